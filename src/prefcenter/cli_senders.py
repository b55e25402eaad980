"""The senders' toolkit on the command line (issue 13).

``prefcenter import FILE --tenant T [--scope S] [--dry-run] [--format csv|jsonl]``
``prefcenter suppression-list import FILE --tenant T [--dry-run]``
``prefcenter export contacts|ledger --tenant T [--scope S] [--format csv|jsonl] [-o FILE]``
``prefcenter gdpr access|erase CONTACT_ID --tenant T``
``prefcenter feedback-keys set --tenant T [--sendgrid-public-key K] [--mailgun-signing-key K]``

The CLI acts for the operator of the server: the whole tenant (or ``--scope``'s
subtree), recorded in the ledger as actor ``cli``. The rules are the services'.

Partners hear of the CLI's changes as of the server's: every ledger event it writes
enqueues webhook deliveries in the same transaction (the outbox hook of
``services.webhooks``, registered by importing it here), which the server's worker
delivers; the change stream reads the ledger, so live subscribers receive them too (at
the latest after ``stream_poll_seconds``, as for any change made by another process).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TextIO

from prefcenter import db
from prefcenter.errors import DomainError
from prefcenter.models import Scope
from prefcenter.services import webhooks  # noqa: F401  (its outbox hook: partners are told)
from prefcenter.services.channels.email import feedback
from prefcenter.services.common import parse_uuid
from prefcenter.services.people import gdpr
from prefcenter.services.senders import exports, imports
from prefcenter.services.tenancy.principals import Principal, system_principal
from prefcenter.settings import Settings

ACTOR = "cli"


def _run(args: argparse.Namespace, fn: Callable[[], Awaitable[int]]) -> int:
    settings = Settings.from_env(database_url=getattr(args, "database_url", None))

    async def wrapped() -> int:
        await db.prepare_database(settings)
        try:
            return await fn()
        except DomainError as exc:
            print(f"prefcenter: {exc.message}", file=sys.stderr)
            return 2
        finally:
            await db.close_db()

    return asyncio.run(wrapped())


async def _principal(args: argparse.Namespace) -> Principal:
    tenant = parse_uuid(args.tenant, "tenant", "tenant")
    root = await Scope.get_or_none(tenant_id=tenant, parent_id=None)
    if root is None:
        raise DomainError("No such tenant.", field="tenant")
    return system_principal(tenant, str(root.id), ACTOR)


class _Progress:
    """A progress line on stderr: rows, outcome counts and rate (redrawn on a terminal)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.started = time.monotonic()
        self.last = 0.0
        self.tty = stream.isatty()

    def __call__(self, s: imports.ImportSummary) -> None:
        now = time.monotonic()
        if now - self.last < (0.2 if self.tty else 5.0):
            return
        self.last = now
        rate = s.rows / max(now - self.started, 1e-9)
        line = (f"{s.rows} rows  created {s.created}  updated {s.updated}  unchanged "
                f"{s.unchanged}  refused {s.refused}  ({rate:,.0f} rows/s)")
        self.stream.write(("\r" + line) if self.tty else (line + "\n"))
        self.stream.flush()

    def done(self) -> None:
        if self.tty:
            self.stream.write("\n")


def cmd_import(args: argparse.Namespace) -> int:
    async def run() -> int:
        principal = await _principal(args)
        progress = _Progress(sys.stderr)
        summary = await imports.import_file(principal, Path(args.file), fmt=args.format,
                                            scope_id=args.scope, dry_run=args.dry_run,
                                            progress=progress)
        progress.done()
        print(imports.summary_text(summary), end="")
        return 1 if summary.refused else 0

    return _run(args, run)


def cmd_suppression_import(args: argparse.Namespace) -> int:
    async def run() -> int:
        principal = await _principal(args)
        summary = await imports.import_suppression_list(principal, Path(args.file),
                                                        dry_run=args.dry_run)
        print(json.dumps(summary.as_dict(), indent=2))
        return 1 if summary.refused else 0

    return _run(args, run)


def cmd_export(args: argparse.Namespace) -> int:
    with contextlib.ExitStack() as stack:
        out: TextIO = (stack.enter_context(Path(args.output).open("w", encoding="utf-8"))
                       if args.output else sys.stdout)

        async def run() -> int:
            principal = await _principal(args)
            if args.scope:
                scope = await Scope.get_or_none(id=parse_uuid(args.scope, "scope", "scope"),
                                                tenant_id=principal.tenant_id)
                if scope is None:
                    raise DomainError("No such scope.", field="scope")
                principal = Principal(kind="system", tenant_id=principal.tenant_id,
                                      scope_id=str(scope.id), scope_path=scope.path,
                                      label=ACTOR)
            chunks = (exports.export_contacts(principal, args.format)
                      if args.what == "contacts" else exports.export_ledger(principal,
                                                                            args.format))
            async for text in chunks:
                out.write(text)
            return 0

        return _run(args, run)


def cmd_gdpr(args: argparse.Namespace) -> int:
    async def run() -> int:
        principal = await _principal(args)
        if args.action == "access":
            doc = await gdpr.access(principal, args.contact_id)
        else:
            doc = await gdpr.erase(principal, args.contact_id)
        print(json.dumps(doc, indent=2, ensure_ascii=False, default=str))
        return 0

    return _run(args, run)


def cmd_feedback_keys(args: argparse.Namespace) -> int:
    async def run() -> int:
        principal = await _principal(args)
        try:
            config = await feedback.set_keys(principal.tenant_id,
                                             sendgrid_public_key=args.sendgrid_public_key,
                                             mailgun_signing_key=args.mailgun_signing_key)
        except ValueError as exc:
            raise DomainError(f"SendGrid key: {exc}", field="sendgrid") from None
        print(f"sendgrid: {'set' if config.sendgrid_public_key else 'not set'}; "
              f"mailgun: {'set' if config.mailgun_signing_key else 'not set'}")
        print(f"webhook URLs: /feedback/sendgrid/{principal.tenant_id}  "
              f"/feedback/mailgun/{principal.tenant_id}")
        return 0

    return _run(args, run)


def add_commands(sub: Any) -> None:
    """Register the toolkit's subcommands on ``prefcenter``'s parser."""

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--tenant", required=True, help="tenant id")
        p.add_argument("--database-url", default=None)

    p = sub.add_parser("import", help="import contacts and decisions (CSV or JSON Lines)")
    p.add_argument("file")
    common(p)
    p.add_argument("--scope", default=None,
                   help="home scope of new contacts and default scope of decisions")
    p.add_argument("--format", choices=imports.FORMATS, default=None)
    p.add_argument("--dry-run", action="store_true", help="check and count; change nothing")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("suppression-list", help="the tenant's suppression list")
    ssub = p.add_subparsers(dest="suppression_command", required=True)
    si = ssub.add_parser("import", help="suppress addresses (plain or SHA-256), one a line")
    si.add_argument("file")
    common(si)
    si.add_argument("--dry-run", action="store_true")
    si.set_defaults(func=cmd_suppression_import)

    p = sub.add_parser("export", help="stream contacts with decisions, or the ledger")
    p.add_argument("what", choices=("contacts", "ledger"))
    common(p)
    p.add_argument("--scope", default=None, help="limit to this subtree")
    p.add_argument("--format", choices=exports.FORMATS, default="csv")
    p.add_argument("-o", "--output", default=None, help="file (default: stdout)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("gdpr", help="access (Art. 15/20) or erasure (Art. 17) of a contact")
    p.add_argument("action", choices=("access", "erase"))
    p.add_argument("contact_id")
    common(p)
    p.set_defaults(func=cmd_gdpr)

    p = sub.add_parser("feedback-keys", help="email providers' webhook keys of a tenant")
    fsub = p.add_subparsers(dest="feedback_command", required=True)
    fs = fsub.add_parser("set", help="set (or with '' clear) a provider's key")
    common(fs)
    fs.add_argument("--sendgrid-public-key", default=None,
                    help="SendGrid Event Webhook verification key (base64 DER or PEM)")
    fs.add_argument("--mailgun-signing-key", default=None,
                    help="Mailgun HTTP webhook signing key")
    fs.set_defaults(func=cmd_feedback_keys)
