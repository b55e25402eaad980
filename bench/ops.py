"""Side-by-side throughput of two server set-ups under concurrent load (issue 16).

    .venv/bin/python -m bench.ops overhead [--on metrics+traces] [--seconds 8] [--rounds 3]
    .venv/bin/python -m bench.ops servers  [--seconds 8] [--rounds 3] [--clients 16]

``overhead``: the same build twice, ``prefcenter serve`` with everything off vs with
``--on`` (metrics open; OpenTelemetry exporting to a local OTLP sink, a real HTTP
receiver; JSON access logs). ``servers``: uvicorn (``prefcenter serve``) vs granian (``granian
--interface asgi --factory prefcenter.app:create_app``), both one process.
Both servers run at once on one seeded SQLite database; rounds alternate A, B, A, B so
the machine's noise falls on both; each round is ``--clients`` keep-alive connections
posting the same query for ``--seconds``. Rate limits are off; non-2xx answers are
counted and printed. The load generator is a small raw-HTTP/1.1 asyncio client (one
process, no dependency).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench.core import DECISION, seed
from prefcenter import db
from prefcenter.settings import Settings

TYPENAME = "{ __typename }"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def otlp_sink() -> tuple[str, ThreadingHTTPServer]:
    """Accepts OTLP/HTTP exports (POST /v1/traces) and answers 200, like a collector."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", "0")))
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", "0")
            self.end_headers()

    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{port}", server


class Server:
    def __init__(self, name: str, command: list[str], env: dict[str, str], port: int,
                 folder: Path) -> None:
        self.name, self.port = name, port
        self.log = (folder / f"{name}.log").open("wb")
        self.process = subprocess.Popen(command, env=env, stdout=self.log,
                                        stderr=subprocess.STDOUT, cwd=folder)

    async def ready(self) -> None:
        for _ in range(300):
            try:
                status, _ = await one_request(self.port, "GET", "/healthz", b"", {})
                if status == 200:
                    return
            except OSError:
                pass
            if self.process.poll() is not None:
                raise SystemExit(f"{self.name} exited; see {self.log.name}")
            await asyncio.sleep(0.1)
        raise SystemExit(f"{self.name} did not start")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def _request(method: str, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    head = [f"{method} {path} HTTP/1.1", "host: 127.0.0.1", f"content-length: {len(body)}"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return status


async def one_request(port: int, method: str, path: str, body: bytes,
                      headers: dict[str, str]) -> tuple[int, None]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(_request(method, path, body, headers))
        return await _read_response(reader), None
    finally:
        writer.close()


async def load(port: int, payload: bytes, key: str, seconds: float, clients: int
               ) -> tuple[float, int, int]:
    """(requests/s, 2xx, non-2xx) for ``clients`` keep-alive connections."""
    raw = _request("POST", "/graphql", payload, {"content-type": "application/json",
                                                  "authorization": f"Bearer {key}"})
    ok = bad = 0
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        nonlocal ok, bad
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < deadline:
                writer.write(raw)
                status = await _read_response(reader)
                if 200 <= status < 300:
                    ok += 1
                else:
                    bad += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.perf_counter() - started
    return (ok + bad) / elapsed, ok, bad


def base_env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFCENTER_")}
    env.update({"PREFCENTER_DATABASE_URL": url, "PREFCENTER_RUN_WORKERS": "false",
                "PREFCENTER_RATE_LIMIT_KEY_PER_MINUTE": "0",
                "PREFCENTER_RATE_LIMIT_ANONYMOUS_PER_MINUTE": "0",
                "PREFCENTER_LOG_LEVEL": "WARNING"})
    return env


def serve(port: int) -> list[str]:
    return [sys.executable, "-m", "prefcenter", "serve", "--port", str(port)]


async def run(args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="prefcenter-bench-ops-"))
    url = f"sqlite://{folder / 'bench.sqlite3'}"
    settings = Settings(database_url=url, log_level="WARNING")
    await db.prepare_database(settings)
    try:
        seeded = await seed(args.contacts, random.Random(7))
    finally:
        await db.close_db()
    env = base_env(url)
    sink = None
    pa, pb = free_port(), free_port()
    if args.mode == "overhead":
        sink_url, sink = otlp_sink()
        on = {"metrics": {"PREFCENTER_METRICS": "open"},
              "traces": {"PREFCENTER_OTEL_ENDPOINT": sink_url},
              "json-logs": {"PREFCENTER_LOG_FORMAT": "json", "PREFCENTER_LOG_LEVEL": "INFO"}}
        extra: dict[str, str] = {}
        for part in args.on.split("+"):
            extra.update(on[part])
        names = ("off", args.on)
        a = Server(names[0], serve(pa), env, pa, folder)
        b = Server(names[1], serve(pb), {**env, **extra}, pb, folder)
    else:
        granian = shutil.which("granian", path=str(Path(sys.executable).parent))
        if granian is None:
            raise SystemExit("bench: pip install granian first")
        names = ("uvicorn", "granian")
        a = Server(names[0], serve(pa), env, pa, folder)
        b = Server(names[1], [granian, "--interface", "asgi", "--factory", "--host",
                              "127.0.0.1", "--port", str(pb), "--workers", "1",
                              "--log-level", "warning", "prefcenter.app:create_app"],
                   env, pb, folder)
    try:
        await a.ready()
        await b.ready()
        target = str(seeded.target.id)
        queries = {
            "decision": json.dumps({"query": DECISION, "variables": {
                "c": seeded.contact_ids[0], "s": target}}).encode(),
            "{ __typename }": json.dumps({"query": TYPENAME}).encode(),
        }
        for label, payload in queries.items():
            if args.query not in ("both", label.strip("{} _")):
                continue
            for server in (a, b):  # warm up
                await load(server.port, payload, seeded.owner_key, 1.0, args.clients)
            rates: dict[str, list[float]] = {names[0]: [], names[1]: []}
            bad: dict[str, int] = {names[0]: 0, names[1]: 0}
            pairs: list[float] = []
            for i in range(args.rounds):
                order = (a, b) if i % 2 == 0 else (b, a)  # neither always goes first
                for server in order:
                    rps, _, non2xx = await load(server.port, payload, seeded.owner_key,
                                                args.seconds, args.clients)
                    rates[server.name].append(rps)
                    bad[server.name] += non2xx
                pairs.append(rates[names[1]][-1] / rates[names[0]][-1])
            print(f"{label:16} " + "  ".join(
                f"{n}: median {statistics.median(rates[n]):6.1f} rps "
                f"(rounds {', '.join(f'{r:.0f}' for r in rates[n])}; non-2xx {bad[n]})"
                for n in names) + f"\n{'':16} {names[1]}/{names[0]}: median of the "
                f"{len(pairs)} round-pair ratios {statistics.median(pairs):.3f} "
                f"(each: {', '.join(f'{p:.2f}' for p in pairs)})", flush=True)
    finally:
        a.stop()
        b.stop()
        if sink is not None:
            sink.shutdown()
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ops", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["overhead", "servers"])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--contacts", type=int, default=2000)
    parser.add_argument("--query", choices=["both", "decision", "typename"], default="both")
    parser.add_argument("--on", default="metrics+traces",
                        help="overhead: what B turns on, e.g. metrics, traces, metrics+traces, "
                        "json-logs")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
