"""Real `tajiri-live serve` processes for tests that need sockets."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from conftest import TEST_SECRET
from forkedserve import ForkedProcess

NGINX_ERROR = re.compile(r"\[(error|crit|alert|emerg)\]")
FAST_JOBS = {
    "TAJIRI_VIEWER_COUNT_INTERVAL_SECONDS": "0.2",
    "TAJIRI_JOB_TO_ENDED_EVERY_SECONDS": "0.2",
    "TAJIRI_OUTRO_SECONDS": "0.5",
    "TAJIRI_PRESENCE_RENEW_SECONDS": "0.3",
    "TAJIRI_PRESENCE_MEMBER_TTL_SECONDS": "1.5",
    "TAJIRI_VIEWER_LOG_FLUSH_SECONDS": "0.1",
    "TAJIRI_NODE_HEARTBEAT_SECONDS": "0.2",
    "TAJIRI_NODE_TIMEOUT_SECONDS": "2",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    def __init__(self, workdir: Path, database_url: str, **env: str) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.log_path = workdir / f"serve-{self.port}.log"
        base = {k: v for k, v in os.environ.items() if not k.startswith("TAJIRI_")}
        self.env = {
            **base,
            **FAST_JOBS,
            "TAJIRI_VAR_DIR": str(workdir / "var"),
            "TAJIRI_DATABASE_URL": database_url,
            "TAJIRI_JWT_SECRET": TEST_SECRET,
            "TAJIRI_PUBLIC_BASE_URL": f"http://127.0.0.1:{self.port}",
            **env,
        }
        self.process: ForkedProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> ServerProcess:
        # `tajiri-live serve --port N --no-migrate`, forked from a process that imported the
        # service once (tests/forkedserve.py); `python -m tajiri_live serve` is started as
        # its own program by the CLI's tests.
        self.process = ForkedProcess(
            ["serve", "--port", str(self.port), "--no-migrate"],
            self.env,
            self.workdir,
            self.log_path,
        )
        deadline = time.monotonic() + 60  # a loaded two-core machine starts slowly
        while True:
            try:
                if httpx.get(f"{self.url}/ready", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()  # not left running into the next test
                raise RuntimeError(f"server did not start:\n{self.log_path.read_text()}")
            time.sleep(0.1)

    def kill(self) -> None:
        """Die without a goodbye, as a crashed node would."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text()


class IngestProcess:
    """`tajiri-live ingest`: nginx with the RTMP module, configured from the same settings."""

    def __init__(self, workdir: Path, **env: str) -> None:
        self.workdir = workdir
        self.rtmp_port = free_port()
        self.http_port = free_port()
        self.log_path = workdir / "ingest.log"
        base = {k: v for k, v in os.environ.items() if not k.startswith("TAJIRI_")}
        self.env = {
            **base,
            "TAJIRI_VAR_DIR": str(workdir / "var"),
            "TAJIRI_JWT_SECRET": TEST_SECRET,
            "TAJIRI_INGEST_RTMP_PORT": str(self.rtmp_port),
            "TAJIRI_INGEST_HTTP_PORT": str(self.http_port),
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def settings_env(self) -> dict[str, str]:
        """What the API nodes must share with it."""
        return {k: v for k, v in self.env.items() if k.startswith("TAJIRI_INGEST_")}

    def rtmp_url(self, name: str) -> str:
        return f"rtmp://127.0.0.1:{self.rtmp_port}/live/{name}"

    def start(self) -> IngestProcess:
        command = [sys.executable, "-m", "tajiri_live", "ingest"]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                env=self.env,
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # nginx and the ffmpeg it starts: one group to stop
            )
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.rtmp_port), timeout=0.5):
                    return self
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nginx did not start:\n{self.log_path.read_text()}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)

    def errors(self) -> list[str]:
        """nginx's error log lines at `error` or worse (it logs from `warn` up)."""
        path = self.workdir / "var" / "nginx" / "error.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return [line for line in text.splitlines() if NGINX_ERROR.search(line)]

    def logs(self) -> str:
        """Everything nginx wrote: its error and access logs and the command's own output."""
        run_dir = self.workdir / "var" / "nginx"
        texts = [self.log_path.read_text(errors="replace")]
        texts += [p.read_text(errors="replace") for p in run_dir.glob("*.log")]
        return "\n".join(texts)
