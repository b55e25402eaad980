"""``prefcenter migrate`` and start-up checks, through the real command in a subprocess."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.storage.conftest import cli, connected, free_port, one_line_error, serving
from tests.storage.dialect import rows, timestamp


def test_migrate_applies_then_reports_up_to_date(database_url: str, tmp_path: Path) -> None:
    first = cli("migrate", "--database-url", database_url, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "applied 0001_initial" in first.stdout
    assert first.stdout.strip().endswith("database schema is up to date")
    again = cli("migrate", "--database-url", database_url, cwd=tmp_path)
    assert (again.returncode, again.stdout.strip()) == (0, "nothing to migrate: up to date")
    plan = cli("migrate", "--plan", "--database-url", database_url, cwd=tmp_path)
    assert plan.returncode == 0
    assert "applied   0001_initial" in plan.stdout and "pending" not in plan.stdout


@pytest.mark.parametrize("command", ["serve", "migrate"])
@pytest.mark.parametrize(("url", "expected"), [
    ("mysql://root:hunter2@localhost/pc", "unsupported database URL 'mysql://root:***@"),
    ("postgres://app:hunter2@localhost:five/pc", "bad database URL 'postgres://app:***@"),
    ("sqlite://", "bad database URL 'sqlite://': No path specified"),
])
def test_a_bad_database_url_is_one_line_and_a_failure(command: str, url: str, expected: str,
                                                     tmp_path: Path) -> None:
    line = one_line_error(cli(command, "--database-url", url, cwd=tmp_path))
    assert expected in line
    assert "hunter2" not in line


@pytest.mark.parametrize("command", ["serve", "migrate"])
def test_an_unreachable_database_is_one_line_and_a_failure(command: str,
                                                          tmp_path: Path) -> None:
    closed = f"postgres://app:hunter2@127.0.0.1:{free_port()}/pc"
    line = one_line_error(cli(command, "--database-url", closed, cwd=tmp_path))
    assert line.startswith("prefcenter: cannot connect to the database "
                           "postgres://app:***@127.0.0.1:")
    missing = f"sqlite://{tmp_path / 'no-such-dir' / 'pc.sqlite3'}"
    line = one_line_error(cli(command, "--database-url", missing, cwd=tmp_path))
    assert "cannot open the database file" in line


async def test_a_database_from_a_newer_prefcenter_is_refused_at_start(
        database_url: str, tmp_path: Path) -> None:
    async with connected(database_url):
        await rows("INSERT INTO tortoise_migrations (app, name, applied_at) VALUES (?, ?, ?)",
                   ["models", "0999_from_the_future", timestamp(datetime.now(UTC))])
    for command in ("serve", "migrate"):
        line = one_line_error(cli(command, "--database-url", database_url, cwd=tmp_path))
        assert line == ("prefcenter: the database was migrated by a newer prefcenter (unknown "
                        "migrations: 0999_from_the_future); run that version or a later one")


def test_serve_migrates_on_start_unless_auto_migrate_is_off(database_url: str,
                                                            tmp_path: Path) -> None:
    refused = cli("serve", "--database-url", database_url, cwd=tmp_path,
                  env={"PREFCENTER_AUTO_MIGRATE": "false"})
    line = one_line_error(refused)
    assert "PREFCENTER_AUTO_MIGRATE is off; run `prefcenter migrate`" in line
    before = cli("migrate", "--plan", "--database-url", database_url, cwd=tmp_path)
    assert "pending   0001_initial" in before.stdout and "applied" not in before.stdout

    with serving(database_url, tmp_path) as base:
        assert httpx.get(f"{base}/readyz", timeout=5).json()["database"] == "ok"
    after = cli("migrate", "--plan", "--database-url", database_url, cwd=tmp_path)
    assert "applied   0001_initial" in after.stdout and "pending" not in after.stdout
    # migrated now: a server with auto-migration off starts too
    with serving(database_url, tmp_path, env={"PREFCENTER_AUTO_MIGRATE": "false"}) as base:
        assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200


async def test_servers_starting_together_migrate_once(database_url: str,
                                                      tmp_path: Path) -> None:
    """Several processes migrating one fresh database at once: each migration runs once."""
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(
            lambda _: cli("migrate", "--database-url", database_url, cwd=tmp_path), range(3)))
    assert [r.returncode for r in results] == [0, 0, 0], [r.stderr for r in results]
    applied = [line for r in results for line in r.stdout.splitlines()
               if line.startswith("applied ")]
    async with connected(database_url):
        history = [r["name"] for r in await rows("SELECT name FROM tortoise_migrations")]
    assert sorted(history) == sorted(set(history))
    assert sorted(line.removeprefix("applied ") for line in applied) == sorted(history)
