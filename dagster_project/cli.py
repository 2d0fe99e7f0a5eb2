"""`sendwise` command line. Each command lives in its concern's `cli` module, imported only when used.

A command module exposes `configure(parser)` (adds its arguments) and `run(args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# command name -> (module, one-line help). Modules must be cheap to import (heavy imports in run()).
COMMANDS: dict[str, tuple[str, str]] = {
    "warehouse": ("dagster_project.warehouse.cli", "start|stop|status|url of the embedded warehouse"),
    "generate": ("dagster_project.synthetic.cli", "generate (or extend) the synthetic source world"),
    "run": ("dagster_project.automation.run", "run the whole pipeline on the configured sources"),
    "check-sources": ("dagster_project.ingestion.check_sources", "check the sources; loads nothing"),
    "demo": ("dagster_project.automation.demo", "run the whole pipeline end to end on the default world"),
    "dev": ("dagster_project.automation.dev", "the Dagster UI on 127.0.0.1:3000"),
    "docs": ("dagster_project.dbt.cli", "build the dbt docs (offline)"),
    "sync": ("dagster_project.activation.cli", "push segments and send times to the ESP"),
    "esp": ("dagster_project.activation.esp_cli", "inspect or serve the local ESP sandbox"),
    "status": ("dagster_project.health.cli", "health report: sources, loads, quality, ESP sync, profiles"),
    "privacy": ("dagster_project.privacy.cli", "delete|suppress|unsuppress people (privacy requests)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sendwise", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show the full traceback of a failure")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text)
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name and module_name.startswith(error.name):
                sub._name_parser_map.pop(name)  # not built yet in this checkout
                continue
            raise
        module.configure(command_parser)
        command_parser.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    from dagster_project.preflight import PreflightError
    from dagster_project.settings import SettingsError
    from dagster_project.synthetic.ownership import NotOursError

    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except (SettingsError, PreflightError, NotOursError) as error:
        if args.debug:
            raise
        # one line naming the setting and the fix; --debug shows where it came from
        print(f"sendwise: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `sendwise esp stats | head`: the reader left; stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0


if __name__ == "__main__":
    sys.exit(main())
