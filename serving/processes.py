"""Stopping a child process: SIGTERM and a grace period, then SIGKILL.

The serve command's learner supervisor and the demo's server both stop their
children this way.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess

__all__ = ["terminate"]


def terminate(process: subprocess.Popen, *, timeout: float, group: bool = False) -> bool:
    """SIGTERM ``process`` and wait up to ``timeout`` seconds; then SIGKILL it.

    SIGTERM lets the child finish what it is doing (a learner step, gunicorn's
    graceful shutdown); SIGKILL bounds how long a hung child holds its caller.

    Parameters
    ----------
    process : subprocess.Popen
        A running child.
    timeout : float
        Seconds the child gets to exit after SIGTERM.
    group : bool, default=False
        SIGKILL the child's whole process group (a child started with
        ``start_new_session=True`` that has children of its own).

    Returns
    -------
    bool
        True when the child exited within ``timeout``; False when it was killed.
    """
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
        return True
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(process.pid, signal.SIGKILL)
            else:
                process.kill()
        process.wait(10)
        return False
