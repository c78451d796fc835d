"""What the benchmarks share: percentiles, free ports, the C clients' builds, and writing results
into the docs."""

from __future__ import annotations

import functools
import re
import socket
import subprocess
import time
import timeit
from pathlib import Path

BENCH = Path(__file__).resolve().parent
DOCS = BENCH.parent / "docs" / "benchmarks.md"


def build_c(name: str, workdir: Path) -> Path:
    """bench/NAME.c compiled with gcc into WORKDIR/NAME (once per folder)."""
    binary = workdir / name
    if not binary.exists():
        source = BENCH / f"{name}.c"
        subprocess.run(["gcc", "-O2", "-o", str(binary), str(source), "-lm"], check=True)
    return binary


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@functools.cache
def host_speed_ms() -> float:
    """How fast one core of this host runs plain Python: milliseconds to sum a million
    integers (best of five), measured once, before the run (a busy second core slows this
    one: the two may share a physical core). Figures from different hosts compare only
    through it."""
    return min(timeit.repeat("sum(range(10**6))", number=1, repeat=5)) * 1000


def host_speed_line() -> str:
    return f"Host speed: one core sums a million integers in {host_speed_ms():.1f} ms."


def write_doc_block(name: str, command: str, report: str, where: str = "") -> None:
    """Replace the `<!-- name:start -->…<!-- name:end -->` block of docs/benchmarks.md."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = DOCS.read_text()
    if start not in text:
        raise SystemExit(f"docs/benchmarks.md has no {start} block")
    stamp = time.strftime("%Y-%m-%d", time.gmtime())
    speed = f"{host_speed_ms():.1f} ms to sum a million integers"
    block = f"{start}\nLatest run ({stamp}, `{command}`{where}; host: {speed}):\n\n{report}{end}"
    DOCS.write_text(re.sub(f"{start}.*?{end}", lambda _: block, text, flags=re.S))
