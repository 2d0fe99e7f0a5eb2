"""Whether a process is still there: one answer for the warehouse server, run workers and `sendwise dev`."""

from __future__ import annotations

import psutil


def process_alive(pid: int) -> bool:
    """True while the process exists and has not exited; a zombie (exited, not yet reaped) is gone,
    someone else's process that we may not inspect is alive."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True
