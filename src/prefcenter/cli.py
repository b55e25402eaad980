"""``prefcenter serve | demo | tenant create | api-key create | export-schema | migrate``
and the senders' toolkit (``import``, ``export``, ``gdpr``, ... in ``cli_senders``)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from prefcenter import cli_senders
from prefcenter.settings import Settings


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    for name in ("database_url", "host", "port"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    if overrides.get("port") is not None or overrides.get("host") is not None:
        host = overrides.get("host") or Settings.from_env().host
        port = overrides.get("port") or Settings.from_env().port
        env_public = Settings.from_env().public_url
        if env_public == Settings().public_url:
            overrides["public_url"] = f"http://{host}:{port}"
    return Settings.from_env(**overrides)


def _fail(message: str) -> int:
    print(f"prefcenter: {message}", file=sys.stderr)
    return 2


async def _with_db(settings: Settings, fn: Callable[[], Awaitable[Any]]) -> Any:
    from prefcenter import db

    await db.prepare_database(settings)
    try:
        return await fn()
    finally:
        await db.close_db()


async def _nothing() -> None:
    return None


def cmd_serve(args: argparse.Namespace, *, banner: Callable[[Settings], None] | None = None
              ) -> int:
    import uvicorn

    from prefcenter.app import create_app

    settings = _settings(args)
    # Migrate (or refuse) before uvicorn starts, so a database problem is one line, not a
    # lifespan traceback; the app's own start-up then finds the schema current.
    asyncio.run(_with_db(settings, _nothing))
    workers = args.workers if getattr(args, "workers", None) is not None else settings.workers
    if workers < 1:
        return _fail("--workers must be at least 1")
    if banner is not None:
        banner(settings)
    print(f"prefcenter: serving on http://{settings.host}:{settings.port} "
          f"(GraphiQL at /graphql; {workers} server process(es))", flush=True)
    common: dict[str, Any] = {
        "host": settings.host, "port": settings.port, "log_level": "warning",
        # After SIGTERM (and the drain, see http/health.py): how long requests in flight
        # get before they are cancelled.
        "timeout_graceful_shutdown": settings.shutdown_timeout_seconds,
    }
    if workers == 1:
        uvicorn.run(create_app(settings), **common)
        return 0
    # Several processes share the one listening socket (uvicorn's supervisor restarts one
    # that dies). Each builds its app from the environment, so the command line's
    # settings travel there; metrics from every process are added up through
    # PROMETHEUS_MULTIPROC_DIR.
    os.environ.update({"PREFCENTER_DATABASE_URL": settings.database_url,
                       "PREFCENTER_HOST": settings.host, "PREFCENTER_PORT": str(settings.port),
                       "PREFCENTER_PUBLIC_URL": settings.public_url})
    with contextlib.ExitStack() as stack:
        if settings.metrics != "off" and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = stack.enter_context(
                tempfile.TemporaryDirectory(prefix="prefcenter-metrics-"))
        uvicorn.run("prefcenter.app:create_app", factory=True, workers=workers, **common)
    return 0


#: Where ``prefcenter demo`` keeps its owner key's secret (only hashes are in the database).
DEMO_KEY_SUFFIX = ".demo-key"


def demo_key_file(settings: Settings) -> Path:
    """Next to the SQLite file (``prefcenter.sqlite3`` -> ``prefcenter.demo-key``); for
    another database, ``prefcenter.demo-key`` in the working directory."""
    url = settings.database_url
    if url.startswith("sqlite://") and not url.startswith("sqlite://:memory:"):
        db_path = Path(url.removeprefix("sqlite://").split("?", 1)[0])
        return db_path.with_name(db_path.stem + DEMO_KEY_SUFFIX)
    return Path("prefcenter" + DEMO_KEY_SUFFIX)


def _read_secret(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def _write_secret(path: Path, secret: str) -> None:
    """Owner-only (0600): the file holds a credential for the whole demo tenant."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(secret + "\n")
    os.chmod(path, 0o600)


def cmd_demo(args: argparse.Namespace) -> int:
    from prefcenter.services.demo import ensure_demo

    settings = _settings(args)
    key_file = demo_key_file(settings)

    async def run() -> Any:
        return await ensure_demo(timedelta(days=settings.link_ttl_days),
                                 known_key=_read_secret(key_file))

    info = asyncio.run(_with_db(settings, run))
    if not info.key_reused:
        _write_secret(key_file, info.owner_key)
    base = settings.public_url.rstrip("/")
    db_arg = f" --database-url {args.database_url}" if args.database_url else ""
    pad = " " * 22
    if info.key_reused:
        key_note = f"{pad}(the demo's key, kept in {key_file})"
    elif info.created:
        key_note = f"{pad}(new; kept in {key_file} for the next runs)"
    else:
        key_note = (f"{pad}(NEW key: {key_file} held none that still works; kept there now.\n"
                    f"{pad} Keys made earlier keep working until revoked: "
                    f"`prefcenter api-key list{db_arg}`,\n"
                    f"{pad} `prefcenter api-key revoke KEY_ID{db_arg}`)")
    print(f"""
prefcenter demo tenant: {info.tenant.name} ({'created' if info.created else 'already there'})
  tenant id:          {info.tenant.id}
  root scope id:      {info.root.id}
  owner API key:      {info.owner_key}
{key_note}
  GraphiQL:           {base}/graphql   (header: {{"Authorization": "Bearer {info.owner_key}"}})
  preference page for {info.contact.email}:
                      {base}/p/{info.preference_token}
""" + "".join(f"  {line}\n" for line in info.tour), flush=True)
    if args.no_serve:
        return 0
    return cmd_serve(args)


def cmd_tenant_create(args: argparse.Namespace) -> int:
    from prefcenter.models.enums import Role
    from prefcenter.services.tenancy import auth, scopes

    settings = _settings(args)

    async def run() -> Any:
        tenant, root = await scopes.create_tenant(args.name, root_kind=args.root_kind)
        issued = await auth.create_api_key(root, Role.OWNER, "owner key (CLI)")
        return tenant, root, issued

    tenant, root, issued = asyncio.run(_with_db(settings, run))
    print(f"tenant id:     {tenant.id}\nroot scope id: {root.id}\nowner API key: {issued.secret}")
    print("(the key is shown once; only its hash is stored)", file=sys.stderr)
    return 0


def cmd_api_key_create(args: argparse.Namespace) -> int:
    from prefcenter.errors import DomainError
    from prefcenter.models import Scope
    from prefcenter.models.enums import Role
    from prefcenter.services.common import parse_uuid, utcnow
    from prefcenter.services.tenancy import auth

    settings = _settings(args)
    try:
        role = Role(args.role.upper())
    except ValueError:
        return _fail(f"unknown role {args.role!r}; use one of {', '.join(r.value for r in Role)}")
    if args.expires_in_days is not None and args.expires_in_days <= 0:
        return _fail("--expires-in-days must be a positive number of days")
    if args.rate_limit_per_minute is not None and args.rate_limit_per_minute < 0:
        return _fail("--rate-limit-per-minute must be 0 (no limit) or more")

    async def run() -> Any:
        scope = await Scope.get_or_none(id=parse_uuid(args.scope, "scope", "scope"))
        if scope is None:
            raise DomainError(f"no scope {args.scope}")
        expires = (utcnow() + timedelta(days=args.expires_in_days)
                   if args.expires_in_days is not None else None)
        return await auth.create_api_key(scope, role, args.name or f"{role.value} key (CLI)",
                                         expires, args.rate_limit_per_minute)

    try:
        issued = asyncio.run(_with_db(settings, run))
    except DomainError as exc:
        return _fail(exc.message)
    print(issued.secret)
    return 0


def cmd_api_key_list(args: argparse.Namespace) -> int:
    from prefcenter.models import ApiKey
    from prefcenter.services.common import utcnow

    settings = _settings(args)

    async def run() -> Any:
        return await ApiKey.all().order_by("created_at")

    for key in asyncio.run(_with_db(settings, run)):
        if key.revoked_at:
            state = f"revoked {key.revoked_at:%Y-%m-%d}"
        elif key.expires_at and key.expires_at <= utcnow():
            state = f"expired {key.expires_at:%Y-%m-%d}"
        elif key.expires_at:
            state = f"active until {key.expires_at:%Y-%m-%d %H:%M}Z"
        else:
            state = "active"
        print(f"{key.id}  pc_{key.prefix}_…  {key.role.value:8} scope={key.scope_id}  "
              f"{state}  last used={key.last_used_at or 'never'}  {key.name}")
    return 0


def cmd_api_key_revoke(args: argparse.Namespace) -> int:
    from prefcenter import caches
    from prefcenter.services.tenancy.auth import revoke_api_key_by_id

    settings = _settings(args)

    async def run() -> int:
        # Servers of this host sharing the database drop the key from their caches at once.
        caches.configure(settings.cache_max_age_seconds, settings.database_url)
        return int(await revoke_api_key_by_id(args.key_id))

    try:
        n = asyncio.run(_with_db(settings, run))
    except Exception as exc:
        return _fail(str(exc))
    if not n:
        return _fail(f"no active key {args.key_id}")
    print(f"revoked {args.key_id}")
    return 0


def cmd_export_schema(args: argparse.Namespace) -> int:
    from prefcenter.graphql.schema import export_sdl

    sys.stdout.write(export_sdl())
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from prefcenter import db

    settings = _settings(args)

    async def run() -> int:
        await db.open_database(settings)
        try:
            if args.plan:
                status = await db.migration_status()
                for name in status.applied:
                    print(f"  applied   {name}")
                for name in status.pending:
                    print(f"  pending   {name}")
                for name in status.unknown:
                    print(f"  unknown   {name}  (applied by a newer prefcenter)")
                return 0
            done = await db.apply_migrations(fake_initial=args.fake_initial)
        finally:
            await db.close_db()
        for name in done:
            print(f"applied {name}")
        print("database schema is up to date" if done else "nothing to migrate: up to date")
        return 0

    result: int = asyncio.run(run())
    return result


def cmd_makemigrations(args: argparse.Namespace) -> int:
    from prefcenter import db

    if args.check:
        changes = asyncio.run(db.model_changes())
        if not changes:
            print("models and migrations agree")
            return 0
        for line in db.describe_changes(changes):
            print(f"  {line}")
        return _fail("the models differ from the migrations; run `prefcenter makemigrations "
                     "--name WHAT_CHANGED` and commit the new file")
    paths = asyncio.run(db.make_migrations(args.name))
    if not paths:
        print("no changes: the migrations already produce the models")
    for path in paths:
        print(f"created {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="prefcenter", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def server_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--host", default=None)
        p.add_argument("--port", type=int, default=None)
        p.add_argument("--database-url", default=None,
                       help="sqlite://FILE (default) or postgres://...; "
                       "or PREFCENTER_DATABASE_URL")

    p = sub.add_parser("serve", help="run the server")
    server_args(p)
    p.add_argument("--workers", type=int, default=None,
                   help="server processes behind the one port (default 1; or "
                   "PREFCENTER_WORKERS); use PostgreSQL and PREFCENTER_REDIS_URL with several")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("demo", help="create the demo tenant once, print a key and a link, serve")
    server_args(p)
    p.add_argument("--no-serve", action="store_true", help="print and exit")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("tenant", help="tenants")
    tsub = p.add_subparsers(dest="tenant_command", required=True)
    tc = tsub.add_parser("create", help="create a tenant and print an owner key once")
    tc.add_argument("name")
    tc.add_argument("--root-kind", default="Organisation")
    tc.add_argument("--database-url", default=None)
    tc.set_defaults(func=cmd_tenant_create)

    p = sub.add_parser("api-key", help="API keys")
    ksub = p.add_subparsers(dest="key_command", required=True)
    kc = ksub.add_parser("create", help="print a new key for a subtree")
    kc.add_argument("--scope", required=True, help="scope id the key is bound to")
    kc.add_argument("--role", required=True, help="OWNER, ADMIN, VIEWER or PARTNER")
    kc.add_argument("--name", default="")
    kc.add_argument("--expires-in-days", type=float, default=None,
                    help="the key stops working after this many days (default: until revoked)")
    kc.add_argument("--rate-limit-per-minute", type=int, default=None,
                    help="this key's own limit on /graphql, 0 for none (default: the "
                         "server's PREFCENTER_RATE_LIMIT_KEY_PER_MINUTE)")
    kc.add_argument("--database-url", default=None)
    kc.set_defaults(func=cmd_api_key_create)
    kl = ksub.add_parser("list", help="list keys (never their secrets)")
    kl.add_argument("--database-url", default=None)
    kl.set_defaults(func=cmd_api_key_list)
    kr = ksub.add_parser("revoke", help="revoke a key by id")
    kr.add_argument("key_id")
    kr.add_argument("--database-url", default=None)
    kr.set_defaults(func=cmd_api_key_revoke)

    p = sub.add_parser("export-schema", help="print the GraphQL SDL (schema.graphql)")
    p.set_defaults(func=cmd_export_schema)

    p = sub.add_parser("migrate", help="apply pending schema migrations (serve and demo do "
                       "it too unless PREFCENTER_AUTO_MIGRATE=false)")
    p.add_argument("--database-url", default=None)
    p.add_argument("--plan", action="store_true",
                   help="list applied and pending migrations; change nothing")
    p.add_argument("--fake-initial", action="store_true",
                   help="adopt a database created before migrations: record the first "
                   "migration as applied instead of running it")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("makemigrations", help="developers: write the migration the model "
                       "changes need into prefcenter/migrations/")
    p.add_argument("--name", default=None, help="what changed, e.g. add_webhooks")
    p.add_argument("--check", action="store_true",
                   help="write nothing; fail when the models differ from the migrations")
    p.set_defaults(func=cmd_makemigrations)

    cli_senders.add_commands(sub)  # import, suppression-list, export, gdpr, feedback-keys
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from prefcenter.db import DatabaseError

    try:
        result: int = args.func(args)
    except DatabaseError as exc:
        print(f"prefcenter: {exc}", file=sys.stderr)
        return 1
    return result
