"""Benchmark of the senders' toolkit (issue 13): bulk import and streamed export.

    .venv/bin/python -m bench.senders [--rows 1000000] [--timeout 900]

Into a fresh, migrated SQLite file in a temporary directory:

1. writes a CSV of N rows (a new contact each, with an email, an external id and one
   decision: every third an opt-in with evidence, the rest opt-outs, over three scopes);
2. checks it with ``--dry-run`` (nothing written; what earlier batches planned is kept
   on disk), then imports it, both through the service the CLI uses, in this process,
   with the CLI's webhook outbox hook registered (no endpoint configured), sampling the
   process's resident memory after each batch: rows/s, RSS at 10 %, at the end and the
   peak (reset between the two runs), to show it stays flat;
3. runs ``prefcenter serve`` on a free port and streams ``GET /senders/export/contacts``:
   time to the first byte, to the first data row, total time, rows, and the server's
   peak RSS.

Bounded in time: ``--timeout`` seconds for the import; the run stops early and reports
the rows done and the rate.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from prefcenter import db
from prefcenter.models.enums import Role
from prefcenter.services import webhooks  # noqa: F401  (the outbox hook, as in the CLI)
from prefcenter.services.senders import imports
from prefcenter.services.tenancy import auth, scopes
from prefcenter.services.tenancy.principals import system_principal
from prefcenter.settings import Settings


def rss_mb(pid: int | None = None) -> float:
    """Current resident set size (Linux /proc), in MB."""
    with open(f"/proc/{pid or os.getpid()}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def peak_rss_mb(pid: int | None = None) -> float:
    with open(f"/proc/{pid or os.getpid()}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def write_csv(path: Path, rows: int, scope_ids: list[str]) -> int:
    """The benchmark's file; returns its size in bytes."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["email", "external_id", "scope", "channel", "status", "evidence"])
        for i in range(rows):
            opt_in = i % 3 == 0
            w.writerow([f"person{i}@example.com", f"crm-{i}", scope_ids[i % len(scope_ids)],
                        "EMAIL", "OPTED_IN" if opt_in else "OPTED_OUT",
                        "Ticked the newsletter box at signup (form v3)" if opt_in else ""])
    return path.stat().st_size


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def run_import(settings: Settings, path: Path, rows: int, budget: float,
                     cache_mib: int, dry_run: bool) -> tuple[str, str]:
    await db.prepare_database(settings)
    tenant, root = await scopes.create_tenant("Bench", root_kind="Group")
    key = await auth.create_api_key(root, Role.OWNER, "bench")
    system = system_principal(str(tenant.id), str(root.id), "bench")
    kids = [await scopes.create_scope(system, parent_id=str(root.id), kind="Client",
                                      name=f"Client {i}") for i in range(3)]
    size = write_csv(path, rows, [str(k.id) for k in kids])
    print(f"csv: {rows} rows, {size / 1e6:.1f} MB; RSS before import "
          f"{rss_mb():.0f} MB", flush=True)
    if dry_run:
        await measure(system, path, budget, cache_mib, dry_run=True)
    await measure(system, path, budget, cache_mib, dry_run=False)
    await db.close_db()
    return str(tenant.id), key.secret


def reset_peak_rss() -> None:
    """Linux: VmHWM starts again from the current RSS."""
    with open(f"/proc/{os.getpid()}/clear_refs", "w", encoding="ascii") as fh:
        fh.write("5")


async def measure(system: Any, path: Path, budget: float, cache_mib: int, *, dry_run: bool
                  ) -> None:
    label = "dry run" if dry_run else "import"
    reset_peak_rss()
    samples: list[tuple[int, float, float, float]] = []
    started = time.perf_counter()
    cpu_started = time.process_time()

    def progress(s: imports.ImportSummary) -> None:
        samples.append((s.rows, rss_mb(), time.perf_counter(), time.process_time()))
        if time.perf_counter() - started > budget:
            raise TimeoutError(s.rows)

    try:
        summary = await imports.import_file(system, path, progress=progress,
                                            cache_mib=cache_mib, dry_run=dry_run)
        done = summary.rows
        print(f"{label}: created {summary.created}, refused {summary.refused}, "
              f"events {summary.events}")
    except TimeoutError as exc:
        done = int(exc.args[0])
        print(f"{label}: stopped by --timeout after {done} rows")
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    tenth = next((m for r, m, *_ in samples if r >= done // 10), 0.0)
    print(f"{label}: {done} rows in {elapsed:.1f} s = {done / elapsed:,.0f} rows/s; RSS at "
          f"10 % {tenth:.0f} MB, at the end {samples[-1][1] if samples else 0:.0f} MB, peak "
          f"{peak_rss_mb():.0f} MB", flush=True)
    if len(samples) >= 20:
        # Does the rate fall as the tables grow? The first tenth of the batches against
        # the last tenth.
        k = len(samples) // 10
        for unit, i in (("rows/s", 2), ("rows per CPU-second", 3)):
            first = (samples[k][0] - samples[0][0]) / (samples[k][i] - samples[0][i])
            last = (samples[-1][0] - samples[-1 - k][0]) / (samples[-1][i] - samples[-1 - k][i])
            print(f"{label}: first tenth {first:,.0f} {unit}, last tenth {last:,.0f} "
                  f"(ratio {last / first:.2f})", flush=True)
    print(f"{label}: CPU (all threads of the process) {cpu:.1f} s = {done / cpu:,.0f} rows "
          f"per CPU-second: the rate on an otherwise idle core", flush=True)


def run_export(settings: Settings, key: str) -> None:
    port = free_port()
    env = {**os.environ, "PREFCENTER_DATABASE_URL": settings.database_url,
           "PREFCENTER_RUN_WORKERS": "false", "PREFCENTER_LOG_LEVEL": "WARNING",
           "PREFCENTER_RATE_LIMIT_KEY_PER_MINUTE": "0",
           "PREFCENTER_RATE_LIMIT_ANONYMOUS_PER_MINUTE": "0"}
    server = subprocess.Popen([sys.executable, "-m", "prefcenter", "serve", "--port",
                               str(port)], env=env, stdout=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        print(f"server RSS before export {rss_mb(server.pid):.0f} MB", flush=True)
        started = time.perf_counter()
        first_byte = first_row = None
        lines = 0
        size = 0
        with httpx.stream("GET", f"{base}/senders/export/contacts?format=csv",
                          headers={"Authorization": f"Bearer {key}"}, timeout=600) as r:
            assert r.status_code == 200, r.read()
            for chunk in r.iter_bytes():
                now = time.perf_counter() - started
                if first_byte is None:
                    first_byte = now
                lines += chunk.count(b"\n")
                if first_row is None and lines >= 2:
                    first_row = now
                size += len(chunk)
        total = time.perf_counter() - started
        print(f"export: first byte {first_byte:.3f} s, first row {first_row:.3f} s, "
              f"{lines - 1} rows ({size / 1e6:.0f} MB) in {total:.1f} s = "
              f"{(lines - 1) / total:,.0f} rows/s; server peak RSS "
              f"{peak_rss_mb(server.pid):.0f} MB", flush=True)
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--no-export", action="store_true")
    parser.add_argument("--no-dry-run", action="store_true", help="skip the --dry-run pass")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--cache-mib", type=int, default=64,
                        help="SQLite page cache during the import (0: SQLite's default)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="prefcenter-bench-") as tmp:
        settings = Settings(database_url=f"sqlite://{tmp}/bench.sqlite3", run_workers=False)
        _, key = asyncio.run(run_import(settings, Path(tmp) / "contacts.csv", args.rows,
                                        args.timeout, args.cache_mib,
                                        not args.no_dry_run))
        print(f"user CPU {resource.getrusage(resource.RUSAGE_SELF).ru_utime:.0f} s", flush=True)
        if not args.no_export:
            run_export(settings, key)


if __name__ == "__main__":
    main()
