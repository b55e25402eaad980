"""Where the server's CPU goes: py-spy samples of a running server, grouped by layer.

``bench.hotpath --py-spy`` records the server process (``py-spy record --format raw``,
the ``--idle`` samples dropped) while one request kind is loaded, then puts every sample
in one bucket by the frames on its stack. A sample inside authentication counts as
``auth`` whatever it does there (its SQL included), so ``auth`` is the whole cost of
knowing the caller; otherwise the innermost recognised frame decides (SQL inside the ORM
is ``SQL``; the ORM building a query is ``ORM``).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

#: (bucket, substrings of a frame), innermost match wins; first match in this order.
LEAF_BUCKETS: list[tuple[str, tuple[str, ...]]] = [
    ("SQL (driver)", ("aiosqlite", "sqlite3", "asyncpg", "_sqlite")),
    ("ORM (tortoise, pypika)", ("tortoise/", "pypika")),
    ("GraphQL parse", ("graphql/language",)),
    ("GraphQL validate", ("graphql/validation",)),
    ("serialisation (JSON)", ("json/", "msgspec", "serialization", "encode_json")),
    ("GraphQL execute (graphql-core, strawberry)", ("graphql/", "strawberry/")),
    ("prefcenter services", ("prefcenter/services",)),
    ("middleware (rate limit, CORS)", ("middleware", "prefcenter/http/ratelimit")),
    ("litestar routing, request, response", ("litestar/",)),
    ("uvicorn, HTTP parsing", ("uvicorn/", "h11", "httptools")),
    ("socket I/O (asyncio transports)", ("selector_events", "EpollSelector")),
    ("asyncio event loop", ("asyncio/", "anyio/")),
]
AUTH_FRAMES = ("principal_from_bearer", "_authenticate")


def available() -> bool:
    return shutil.which("py-spy", path=str(Path(sys.executable).parent)) is not None or \
        shutil.which("py-spy") is not None


def start(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    exe = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"
    return subprocess.Popen(
        [exe, "record", "--pid", str(pid), "--format", "raw", "--rate", "250",
         "--duration", str(max(1, int(seconds))), "--output", str(out), "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def bucket(stack: str) -> str:
    frames = stack.split(";")
    if any(a in frame for frame in frames for a in AUTH_FRAMES):
        return "auth (whole: key lookup, its SQL)"
    for frame in reversed(frames):
        for name, needles in LEAF_BUCKETS:
            if any(n in frame for n in needles):
                return name
    return "other Python"


def breakdown(raw: Path) -> list[tuple[str, float]]:
    counts: Counter[str] = Counter()
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        counts[bucket(stack)] += int(n)
    total = sum(counts.values()) or 1
    return [(name, 100.0 * n / total) for name, n in counts.most_common()]


def show(label: str, raw: Path) -> None:
    if not raw.exists():
        print(f"  py-spy: no samples for {label}")
        return
    parts = breakdown(raw)
    print(f"  py-spy, {label}: " + ", ".join(f"{name} {pct:.0f}%" for name, pct in parts
                                              if pct >= 1))
