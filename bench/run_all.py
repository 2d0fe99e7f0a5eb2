"""Run every benchmark in bench/ one after another with its default (large) sizes; each prints figures.

.venv/bin/python bench/run_all.py            # all of them (expect tens of minutes on 2 cores)
.venv/bin/python bench/run_all.py ml sync    # only those named
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ORDER = ("generate", "extract", "ml", "sync", "quality", "scale")


def main(names: list[str]) -> int:
    failures = 0
    for name in names or ORDER:
        started = time.monotonic()
        print(f"\n===== bench/{name}.py", flush=True)
        code = subprocess.call([sys.executable, str(BENCH_DIR / f"{name}.py")])
        print(f"===== bench/{name}.py exit {code} after {time.monotonic() - started:.0f}s", flush=True)
        failures += code != 0
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
