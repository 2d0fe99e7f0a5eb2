"""The dbt project in `dbt/`: its DbtProject, manifest preparation for every entry point, and a runner.

dagster-dbt needs `dbt/target/manifest.json` when the Dagster definitions are imported. `dagster dev`
prepares it itself (`prepare_if_dev`), but the demo, the CLI, tests and CI do not: `prepare_manifest()`
runs `dbt parse` when the manifest is missing or older than any file of the project, under the
concurrent-update guard dagster-dbt uses, and is called on import of `dagster_project.dbt.assets`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from dagster._utils import run_with_concurrent_update_guard
from dagster_dbt import DbtCliResource, DbtProject

from dagster_project.settings import PROJECT_ROOT

DBT_PROJECT_DIR = PROJECT_ROOT / "dbt"
PROJECT_FILE_SUFFIXES = (".sql", ".yml", ".yaml", ".csv", ".md")
PROJECT_SUBFOLDERS = ("models", "macros", "seeds", "snapshots", "tests", "analyses")
PARTIAL_PARSE_FILE = "partial_parse.msgpack"

sendwise_dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


def project_files(project_dir: Path = DBT_PROJECT_DIR) -> list[Path]:
    files = [project_dir / "dbt_project.yml", project_dir / "profiles.yml"]
    for folder in PROJECT_SUBFOLDERS:
        files += [p for p in (project_dir / folder).rglob("*") if p.suffix in PROJECT_FILE_SUFFIXES]
    return [p for p in files if p.exists()]


def manifest_is_stale(project: DbtProject = sendwise_dbt_project) -> bool:
    """True when the manifest is missing or older than a file of the project."""
    manifest = project.manifest_path
    if not manifest.exists():
        return True
    built = manifest.stat().st_mtime
    return any(path.stat().st_mtime > built for path in project_files(Path(project.project_dir)))


def dbt_executable() -> str:
    """The venv's dbt (the venv's bin folder need not be on PATH)."""
    candidate = Path(sys.executable).with_name("dbt")
    return str(candidate) if candidate.exists() else "dbt"


def dbt_resource(project: DbtProject = sendwise_dbt_project) -> DbtCliResource:
    return DbtCliResource(project_dir=project, dbt_executable=dbt_executable())


def _parse(project: DbtProject) -> None:
    dbt_resource(project).cli(["parse", "--quiet"], target_path=project.target_path).wait()


def prepare_manifest(project: DbtProject = sendwise_dbt_project, force: bool = False) -> Path:
    """Make sure `target/manifest.json` exists and is current (`dbt parse`; no database needed).

    Safe to call from several processes at once (dagster's concurrent-update guard).
    """
    if force or manifest_is_stale(project):
        run_with_concurrent_update_guard(project.manifest_path, _parse, project=project)
    return project.manifest_path


def keep_partial_parse(run_target: Path, project: DbtProject = sendwise_dbt_project) -> bool:
    """Make a run's parse state the one the next run starts from (True if there was one to keep).

    dagster-dbt gives each run its own target folder and seeds it with the project's
    `partial_parse.msgpack`. That file comes from `prepare_manifest`'s parse, whose profile (no
    warehouse yet: SENDWISE_PG_* unset) never equals a run's, so every run parsed the whole project
    again ("Unable to do partial parsing because profile has changed": 9-14 s here). The run's own file
    carries its warehouse's profile; dbt still re-parses whatever changed since (it stores file hashes).
    """
    source = run_target / PARTIAL_PARSE_FILE
    if not source.exists():
        return False
    destination = Path(project.project_dir) / project.target_path / PARTIAL_PARSE_FILE
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = destination.with_name(f".{PARTIAL_PARSE_FILE}.{os.getpid()}")
    shutil.copyfile(source, temporary)
    os.replace(temporary, destination)  # atomic: a concurrent run copies the old file or the new one
    return True


def dbt_subprocess_env(warehouse_url: str) -> dict[str, str]:
    """The environment for a dbt process against `warehouse_url` (profiles.yml reads SENDWISE_PG_*)."""
    from dagster_project.warehouse.connection import dbt_env

    return {**os.environ, **dbt_env(warehouse_url), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}


def run_dbt(
    args: Sequence[str],
    warehouse_url: str,
    target_path: Path | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run a dbt command on the project against `warehouse_url` (output captured).

    `target_path` keeps concurrent runs (tests, docs) from sharing `dbt/target`.
    """
    command = [
        dbt_executable(),
        *args,
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--profiles-dir",
        str(DBT_PROJECT_DIR),
    ]
    if target_path is not None:
        command += ["--target-path", str(target_path)]
    completed = subprocess.run(
        command, env=dbt_subprocess_env(warehouse_url), cwd=DBT_PROJECT_DIR, capture_output=True, text=True
    )
    if check and completed.returncode != 0:
        raise RuntimeError(
            f"dbt {' '.join(args)} failed (exit {completed.returncode}):\n"
            f"{completed.stdout[-6000:]}\n{completed.stderr[-2000:]}"
        )
    return completed
