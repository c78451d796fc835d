"""What the benchmarks share: percentiles, free ports, and writing results into the docs."""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_doc_block(name: str, command: str, report: str, where: str = "") -> None:
    """Replace the `<!-- name:start -->…<!-- name:end -->` block of docs/benchmarks.md."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = DOCS.read_text()
    if start not in text:
        raise SystemExit(f"docs/benchmarks.md has no {start} block")
    stamp = time.strftime("%Y-%m-%d", time.gmtime())
    block = f"{start}\nLatest run ({stamp}, `{command}`{where}):\n\n{report}{end}"
    DOCS.write_text(re.sub(f"{start}.*?{end}", lambda _: block, text, flags=re.S))
