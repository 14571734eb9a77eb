"""Whether a process on this host is alive, for the pid files and lease records that name one."""

from __future__ import annotations

import os


def process_running(pid: int) -> bool:
    """Whether process `pid` exists on this host and is not a zombie (killed, not yet reaped by its parent).

    A process of another user counts as running (signal 0 is refused, not unanswered). Linux's /proc gives the
    state; where it cannot be read, existing is enough.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rpartition(")")[2].split()[0] not in ("Z", "X")
    except OSError:
        return True
