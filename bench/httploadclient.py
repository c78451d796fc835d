"""The compiled HTTP load client (bench/httpload.c), driven from a benchmark.

A Python client spends about as much CPU per request as the server it measures (aiohttp:
0.2-0.5 ms a request here), and on a 2-core host it shares its core with PostgreSQL and
Redis. `httpload` sends pre-rendered requests from one epoll loop for a small part of that,
so the server's latencies are not the load's own queue. wrk cannot pace requests (it is
closed loop only) and oha is neither on Debian nor on PyPI: hence a small C client, like the
socket one (bench/wsload.c).
"""

from __future__ import annotations

import asyncio
import json
import resource
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from common import build_c


def build(workdir: Path) -> Path:
    return build_c("httpload", workdir)


def http_request(
    method: str, path: str, headers: Mapping[str, str], body: bytes | None = None
) -> bytes:
    """One HTTP/1.1 keep-alive request, whole."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body is not None:
        lines.append("Content-Type: application/json")
    lines.append(f"Content-Length: {len(body or b'')}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


async def compiled_load(
    binary: Path,
    port: int,
    clients: int,
    seconds: float,
    rate: float,
    requests: Iterable[bytes],
) -> dict[str, Any]:
    """`requests` sent by `clients` connections for `seconds`, closed loop (`rate` 0) or paced
    at `rate` a second; the summary `hammer` and `paced` give, with the client's own CPU
    seconds (`client_cpu_seconds`)."""
    with tempfile.NamedTemporaryFile(prefix="httpload-", suffix=".req") as file:
        for request in requests:
            file.write(b"%d\n" % len(request))
            file.write(request)
        file.flush()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        process = await asyncio.create_subprocess_exec(
            str(binary),
            "127.0.0.1",
            str(port),
            file.name,
            str(clients),
            str(seconds),
            str(rate),
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await process.communicate()
        if process.returncode != 0:
            raise SystemExit(
                f"httpload failed ({process.returncode}) after {time.monotonic() - started:.1f} s"
            )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result: dict[str, Any] = json.loads(out)
    result["codes"] = {int(code): count for code, count in result["codes"].items()}
    result["client_cpu_seconds"] = (after.ru_utime + after.ru_stime) - (
        before.ru_utime + before.ru_stime
    )
    return result
