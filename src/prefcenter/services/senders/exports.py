"""Streamed exports (issue 13): contacts with their explicit decisions, and the ledger.

Both are async generators of text chunks: the transports write them out as they come
(CLI to a file or stdout, HTTP as a streamed response), so the first byte leaves at
once and memory stays flat whatever the size: rows are read in keyset-paginated
batches (contacts by id, events by ledger id), never all at once.

What a caller gets is what it may read anyway: contacts visible to its key (its
subtree, and the contacts of the levels above it), decisions inside its subtree, and
ledger events inside its subtree without the private Not Interested marks. The
contact export has the import's columns, so an export can be imported elsewhere: a
decision about one topic names it in ``topic`` (its key), a general one leaves it empty.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

from prefcenter.errors import Invalid
from prefcenter.models import ConsentEvent, ConsentState, Contact, TopicConsentState
from prefcenter.models.enums import PRIVATE_ACTIONS
from prefcenter.services.consent import ledger
from prefcenter.services.tenancy import authz
from prefcenter.services.tenancy.principals import Capability, Principal

BATCH_SIZE = 2000
FORMATS = ("csv", "jsonl")
CONTACT_COLUMNS = ("contact_id", "email", "phone", "whatsapp", "external_id", "locale", "name",
                   "suppressed", "scope", "topic", "channel", "status", "when", "event_id")
EVENT_COLUMNS = ("id", "occurred_at", "contact_id", "scope_id", "scope_path", "channel",
                 "action", "source", "actor", "evidence", "ip", "user_agent", "data",
                 "topic_id")


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise Invalid(f"Unknown format '{fmt}'; use csv or jsonl.", field="format")
    return fmt


def media_type(fmt: str) -> str:
    """The export's media type, without a charset: the exports are UTF-8 text, and the
    HTTP layer (Litestar) appends ``; charset=<encoding>`` to every ``text/*`` type itself,
    so naming it here too wrote it twice (issue #13)."""
    return "text/csv" if fmt == "csv" else "application/x-ndjson"


class _Writer:
    """Rows -> text in one format; CSV gets its header first."""

    def __init__(self, fmt: str, columns: Sequence[str]) -> None:
        self.fmt = fmt
        self.columns = columns
        self.buffer = io.StringIO()
        self.csv = csv.writer(self.buffer, lineterminator="\n")

    def header(self) -> str:
        if self.fmt != "csv":
            return ""
        self.csv.writerow(self.columns)
        return self.take()

    def row(self, values: dict[str, Any]) -> None:
        if self.fmt == "csv":
            self.csv.writerow(["" if values[c] is None else
                               json.dumps(values[c], sort_keys=True)
                               if isinstance(values[c], dict) else values[c]
                               for c in self.columns])
        else:
            self.buffer.write(json.dumps(values, ensure_ascii=False, default=str) + "\n")

    def take(self) -> str:
        text = self.buffer.getvalue()
        self.buffer.seek(0)
        self.buffer.truncate()
        return text


def check_access(principal: Principal) -> None:
    """Exports are for admins and owners (keys that may change what they export)."""
    authz.require(principal, Capability.WRITE)
    authz.require(principal, Capability.READ_CONTACTS)
    if principal.is_contact:
        raise Invalid("Exports are made with an API key.")


async def export_contacts(principal: Principal, fmt: str, *, batch_size: int = BATCH_SIZE
                          ) -> AsyncIterator[str]:
    """One row per explicit decision (a contact without any: one row without one)."""
    check_access(principal)
    writer = _Writer(check_format(fmt), CONTACT_COLUMNS)
    yield writer.header()
    visible = authz.path_q("home_path", *authz.contact_filter_paths(principal))
    reach = authz.reach_q(principal)
    after: str | None = None
    while True:
        page = Contact.filter(visible, tenant_id=principal.tenant_id)
        if after is not None:
            page = page.filter(id__gt=after)
        # Plain values of the columns written, not model objects (a third of the cost).
        contacts = await page.order_by("id").limit(batch_size).values_list(
            "id", "email", "phone", "whatsapp", "external_id", "locale", "name",
            "suppressed_at", "email_suppressed_at")
        if not contacts:
            return
        after = str(contacts[-1][0])
        states: dict[str, list[tuple[Any, ...]]] = {}
        ids = [c[0] for c in contacts]
        general = await ConsentState.filter(reach, contact_id__in=ids).order_by(
            "scope_path", "channel").values_list(
            "contact_id", "scope_id", "channel", "status", "event_id", "updated_at")
        # Decisions about one topic, after the general ones, with the topic's key.
        about_topics = await TopicConsentState.filter(reach, contact_id__in=ids).order_by(
            "scope_path", "topic__key", "channel").values_list(
            "contact_id", "scope_id", "channel", "status", "event_id", "updated_at",
            "topic__key")
        found = [(*st, None) for st in general] + list(about_topics)
        for st in found:
            states.setdefault(str(st[0]), []).append(st)
        # "when" is the deciding event's time, as an import reads it.
        when = dict(await ConsentEvent.filter(id__in=[st[4] for st in found]).values_list(
            "id", "occurred_at")) if found else {}
        for cid, email, phone, whatsapp, external_id, locale, name, suppressed, \
                email_suppressed in contacts:
            base = {"contact_id": str(cid), "email": email, "phone": phone,
                    "whatsapp": whatsapp, "external_id": external_id, "locale": locale,
                    "name": name,
                    "suppressed": suppressed is not None or email_suppressed is not None}
            mine = states.get(str(cid))
            if not mine:
                writer.row({**base, "scope": None, "topic": None, "channel": None,
                            "status": None, "when": None, "event_id": None})
            for _, scope_id, channel, status, event_id, updated_at, topic in mine or []:
                writer.row({**base, "scope": str(scope_id), "topic": topic,
                            "channel": channel.value,
                            "status": status.value,
                            "when": (when.get(event_id) or updated_at).isoformat(),
                            "event_id": event_id})
        yield writer.take()


async def export_ledger(principal: Principal, fmt: str, *, after_id: int = 0,
                        batch_size: int = BATCH_SIZE) -> AsyncIterator[str]:
    """The ledger in order (oldest first) from ``after_id``, private marks left out."""
    check_access(principal)
    authz.require(principal, Capability.READ_EVENTS)
    writer = _Writer(check_format(fmt), EVENT_COLUMNS)
    yield writer.header()
    qs = ConsentEvent.filter(authz.reach_q(principal), tenant_id=principal.tenant_id).exclude(
        action__in=[a.value for a in PRIVATE_ACTIONS])
    position = after_id
    while True:
        rows = await ledger.LEDGER_ORDER.rows(qs, (position,), batch_size)
        if not rows:
            return
        position = rows[-1].id
        for e in rows:
            writer.row(event_row(e))
        yield writer.take()


def event_row(e: ConsentEvent) -> dict[str, Any]:
    return {"id": e.id, "occurred_at": e.occurred_at.isoformat(),
            "contact_id": str(e.contact_id), "scope_id": str(e.scope_id),
            "scope_path": e.scope_path, "channel": e.channel.value,
            "action": e.action.value, "source": e.source.value, "actor": e.actor,
            "evidence": e.evidence, "ip": e.ip, "user_agent": e.user_agent, "data": e.data,
            "topic_id": str(e.topic_id) if e.topic_id is not None else None}
