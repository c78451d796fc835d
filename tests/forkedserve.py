"""`tajiri-live serve` for tests, forked from a process that imported the service once.

A test server started as `python -m tajiri_live serve` spends about 2.5 s of CPU importing
the service before it serves, and the suite starts a hundred of them. Forked from a
forkserver that has imported it (`multiprocessing`'s "forkserver" start method: a clean,
single-threaded parent with no event loop), each starts in a fraction of that, and then
runs the same command line through the same entry point. Kept apart from `servers.py` so
the forkserver imports nothing of the test suite.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

PRELOAD = ["forkedserve", "tajiri_live.cli", "tajiri_live.asgi", "tajiri_live.app", "uvicorn"]

_context = multiprocessing.get_context("forkserver")
_context.set_forkserver_preload(PRELOAD)


def _run(argv: Sequence[str], env: Mapping[str, str], cwd: str, log_path: str) -> None:
    """In the forked child: the environment, folder and output a new process would get."""
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    sys.argv = ["tajiri-live", *argv]
    from tajiri_live.cli import main

    main()


class ForkedProcess:
    """The part of `subprocess.Popen` the tests use, for a forked `tajiri-live` command."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], cwd: Path, log: Path) -> None:
        self._process = _context.Process(
            # daemonic: ended with the test run should a test leave one behind
            target=_run,
            args=(list(argv), dict(env), str(cwd), str(log)),
            daemon=True,
        )
        self._process.start()
        self.args = ["tajiri-live", *argv]

    @property
    def pid(self) -> int:
        assert self._process.pid is not None
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.exitcode

    def poll(self) -> int | None:
        return self._process.exitcode

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        code = self._process.exitcode
        if code is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        return code

    def send_signal(self, sig: int) -> None:
        if self._process.exitcode is None:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)
