"""Bulk import of contacts and their decisions from CSV or JSON Lines (issue 13).

One row = one contact (matched by email, phone, WhatsApp number or external id; created
when none matches) and optionally one decision for it (scope, channel, status, when,
evidence, and a topic's key for a decision about one topic). A contact with several
decisions takes several rows.

Rules, the same as one change at a time:
- every row is validated (email, phone and WhatsApp number as ``services.people.contacts``
  does); a bad row is refused with its number and reason and nothing of it is written;
- a topic must exist and be offered at the row's scope (as ``optInToTopic`` asks);
- an opt-in needs evidence, and an import never lifts an opt-out (at the scope or above
  it): that still needs the contact's own confirmation;
- a decision the contact already has changes nothing, so running the same file twice
  changes nothing the second time;
- an address on the tenant's suppression list is imported suppressed;
- every decision lands in the ledger with source ``IMPORT``, the file's name and the
  row number in its evidence.

Speed with flat memory: rows are read as a stream and applied in batches; each batch
is planned with a fixed number of queries and written in one transaction with bulk
inserts. The whole file is checked first (size, encoding, columns), so a file that
cannot be read changes nothing.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import csv
import io
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from prefcenter import db, events
from prefcenter.errors import DomainError, ErrorCode, Forbidden, Invalid
from prefcenter.models import ConsentEvent, ConsentState, Contact, Scope, Topic, TopicConsentState
from prefcenter.models.enums import Action, Channel, ConsentStatus, Source, TopicKind
from prefcenter.models.senders import SuppressionEntry, SuppressionOrigin
from prefcenter.services.common import ordered_uuids, utcnow
from prefcenter.services.consent.changes import covers
from prefcenter.services.consent.resolution import topic_not_offered, unknown_topic
from prefcenter.services.people.contacts import normalize_email, normalize_locale, normalize_phone
from prefcenter.services.senders import suppression
from prefcenter.services.senders.rehearsal import PlannedContact, PlannedState, Rehearsal
from prefcenter.services.tenancy import authz
from prefcenter.services.tenancy.principals import Capability, Principal
from prefcenter.services.tenancy.scopes import get_scope

#: Rows planned and written together (one transaction each).
BATCH_SIZE = 5000
#: Refused rows reported in full; beyond this they are only counted.
MAX_REPORTED_ERRORS = 1000

COLUMNS = ("email", "phone", "whatsapp", "external_id", "locale", "name", "scope", "topic",
           "channel", "status", "when", "evidence")
ALIASES = {"externalid": "external_id", "external-id": "external_id", "scopeid": "scope",
           "scope_id": "scope", "occurredat": "when", "occurred_at": "when"}
IDENTITY = ("email", "phone", "whatsapp", "external_id")
#: Columns the contact export adds; an import reads past them (export -> import works).
IGNORED = ("contact_id", "suppressed", "event_id")
FORMATS = ("csv", "jsonl")


class ImportFileError(Invalid):
    """The file as a whole cannot be imported (nothing was changed)."""


@dataclass(frozen=True)
class RowError:
    row: int
    reason: str
    field: str | None = None


@dataclass
class ImportSummary:
    file: str
    dry_run: bool
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    refused: int = 0
    #: Created or matched contacts that the suppression list suppressed.
    suppressed: int = 0
    #: Ledger events written (decisions and suppressions).
    events: int = 0
    errors: list[RowError] = field(default_factory=list)

    def refuse(self, error: RowError) -> None:
        self.refused += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(error)

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "dryRun": self.dry_run, "rows": self.rows,
                "created": self.created, "updated": self.updated,
                "unchanged": self.unchanged, "refused": self.refused,
                "suppressed": self.suppressed, "events": self.events,
                "errors": [{"row": e.row, "reason": e.reason, "field": e.field}
                           for e in self.errors],
                "errorsTruncated": self.refused > len(self.errors)}


Progress = Callable[[ImportSummary], None]


def detect_format(name: str, explicit: str | None = None) -> str:
    if explicit:
        if explicit not in FORMATS:
            raise ImportFileError(f"Unknown format '{explicit}'; use csv or jsonl.",
                                  field="format")
        return explicit
    lower = name.lower()
    if lower.endswith(".csv"):
        return "csv"
    if lower.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    raise ImportFileError("Cannot tell the format from the file name; name it .csv or .jsonl "
                          "(or say --format).", field="format")


def _column(name: str) -> str:
    key = name.strip().lower()
    return ALIASES.get(key, key)


# --- reading the file -------------------------------------------------------------------


def check_file(path: Path, fmt: str, max_bytes: int | None = None) -> None:
    """Refuse, before anything is written, a file that cannot be read as a whole."""
    size = path.stat().st_size
    if max_bytes is not None and size > max_bytes:
        raise ImportFileError(f"The file is {size} bytes; the limit is {max_bytes}.",
                              code=ErrorCode.LIMIT_EXCEEDED)
    if size == 0:
        raise ImportFileError("The file is empty.")
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                bad_line = line + chunk[: exc.start].count(b"\n")
                raise ImportFileError(f"Line {bad_line} is not UTF-8 text: the file must be "
                                      "encoded as UTF-8.") from None
            if b"\x00" in chunk:
                bad_line = line + chunk[: chunk.index(b"\x00")].count(b"\n")
                raise ImportFileError(f"Line {bad_line} contains a NUL byte: not a text file.")
            line += chunk.count(b"\n")
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise ImportFileError("The file ends in the middle of a UTF-8 character.") from None
    if fmt == "csv":
        with path.open(encoding="utf-8-sig", newline="") as text:
            header = next(csv.reader(text), None)
        _check_header(header or [])


def _check_header(header: list[str]) -> list[str]:
    names = [_column(h) for h in header]
    unknown = [h for h, n in zip(header, names, strict=True)
               if n not in COLUMNS and n not in IGNORED]
    if unknown:
        raise ImportFileError(
            f"Unknown column(s): {', '.join(repr(u) for u in unknown)}. Known columns: "
            f"{', '.join(COLUMNS)}.", field="columns")
    if len(set(names)) != len(names):
        raise ImportFileError("A column appears twice in the header.", field="columns")
    if not set(names) & set(IDENTITY):
        raise ImportFileError("The file needs an email, phone, whatsapp or external_id column.",
                              field="columns")
    return names


def read_rows(path: Path, fmt: str) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
    """(row number, raw values) for each data row; row 1 is the first after a header."""
    with path.open(encoding="utf-8-sig", newline="") as text:
        if fmt == "csv":
            reader = csv.reader(text)
            names = _check_header(next(reader, []))
            number = 0
            try:
                for values in reader:
                    number += 1
                    if not any(v.strip() for v in values):
                        continue
                    if len(values) != len(names):
                        yield number, RowError(number, f"{len(values)} values for "
                                                       f"{len(names)} columns.")
                        continue
                    yield number, dict(zip(names, values, strict=True))
            except csv.Error as exc:
                raise ImportFileError(f"Row {number + 1}: not valid CSV ({exc}).") from None
        else:
            for number, line in enumerate(text, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except ValueError:
                    yield number, RowError(number, "Not valid JSON.")
                    continue
                if not isinstance(obj, dict):
                    yield number, RowError(number, "Not a JSON object.")
                    continue
                fields_: dict[str, Any] = {}
                bad = None
                for key, value in obj.items():
                    name = _column(str(key))
                    if name in IGNORED:
                        continue
                    if name not in COLUMNS:
                        bad = RowError(number, f"Unknown field '{key}'.", str(key))
                        break
                    if value is not None and not isinstance(value, str):
                        bad = RowError(number, f"'{key}' must be text.", name)
                        break
                    fields_[name] = value or ""
                yield number, bad or fields_


# --- one row ----------------------------------------------------------------------------


@dataclass
class ParsedRow:
    row: int
    email: str | None
    phone: str | None
    whatsapp: str | None
    external_id: str | None
    locale: str | None
    name: str | None
    scope_id: str | None
    #: A topic's key: the decision is about that topic only.
    topic: str | None
    channel: Channel | None
    status: ConsentStatus | None
    when: datetime | None
    evidence: str | None


def _text(values: dict[str, Any], key: str, max_len: int = 200) -> str | None:
    raw = values.get(key)
    value = str(raw).strip() if raw is not None else ""
    if len(value) > max_len:
        raise Invalid(f"'{key}' is longer than {max_len} characters.", field=key)
    return value or None


def parse_row(number: int, values: dict[str, Any], now: datetime) -> ParsedRow:
    """Validate one row's values (raises DomainError with the field at fault)."""
    email = normalize_email(_text(values, "email", 320))
    phone = normalize_phone(_text(values, "phone", 40))
    whatsapp = normalize_phone(_text(values, "whatsapp", 40), "whatsapp")
    external_id = _text(values, "external_id")
    if email is None and phone is None and whatsapp is None and external_id is None:
        raise Invalid("The row has no email, phone, whatsapp or external_id.", field="email")
    locale_raw = _text(values, "locale", 35)
    locale = normalize_locale(locale_raw) if locale_raw else None
    status_raw = _text(values, "status")
    channel_raw = _text(values, "channel")
    status = channel = None
    when = None
    if status_raw:
        try:
            status = ConsentStatus(status_raw.upper().replace(" ", "_").replace("-", "_"))
        except ValueError:
            raise Invalid("'status' must be OPTED_IN or OPTED_OUT.", field="status") from None
        if not channel_raw:
            raise Invalid("A decision needs a 'channel' (EMAIL, SMS, WHATSAPP or ALL).",
                          field="channel")
        try:
            channel = Channel(channel_raw.upper())
        except ValueError:
            raise Invalid("'channel' must be EMAIL, SMS, WHATSAPP or ALL.",
                          field="channel") from None
        when_raw = _text(values, "when", 64)
        if when_raw:
            try:
                when = datetime.fromisoformat(when_raw.replace("Z", "+00:00"))
            except ValueError:
                raise Invalid("'when' must be an ISO 8601 time such as "
                              "2024-05-01T12:00:00Z.", field="when") from None
            if when.tzinfo is None:
                raise Invalid("'when' needs a time zone (e.g. Z or +02:00).", field="when")
            if when > now:
                raise Invalid("'when' is in the future.", field="when")
    elif channel_raw or _text(values, "when", 64):
        raise Invalid("'channel' and 'when' need a 'status'.", field="status")
    topic = _text(values, "topic", 64)
    if topic and not status:
        raise Invalid("'topic' needs a 'status' (a decision about that topic).",
                      field="status")
    evidence = _text(values, "evidence", 5000)
    return ParsedRow(number, email, phone, whatsapp, external_id, locale,
                     _text(values, "name"), _text(values, "scope", 64), topic, channel,
                     status, when, evidence)


# --- planning and writing a batch -------------------------------------------------------


@dataclass(slots=True)
class _Person:
    """A contact this import creates: its row, without an ORM object (speed)."""

    id: str
    tenant_id: str
    home_scope_id: str
    home_path: str
    email: str | None
    phone: str | None
    whatsapp: str | None
    external_id: str | None
    locale: str
    name: str
    suppressed_at: datetime | None = None
    email_suppressed_at: datetime | None = None
    suppression_reason: str | None = None

    def row(self, now: datetime) -> tuple[Any, ...]:
        return (self.id, self.tenant_id, self.home_scope_id, self.home_path, self.email,
                self.phone, self.whatsapp, self.external_id, self.locale, self.name,
                self.suppressed_at, self.email_suppressed_at, self.suppression_reason, now,
                now)


PERSON_COLUMNS = ("id", "tenant_id", "home_scope_id", "home_path", "email", "phone",
                  "whatsapp", "external_id", "locale", "name", "suppressed_at",
                  "email_suppressed_at", "suppression_reason", "created_at", "updated_at")
STATE_COLUMNS = ("id", "tenant_id", "contact_id", "scope_id", "scope_path", "channel",
                 "status", "event_id", "updated_at")
TOPIC_STATE_COLUMNS = ("id", "tenant_id", "contact_id", "scope_id", "topic_id", "scope_path",
                       "channel", "status", "event_id", "updated_at")
#: The key of a decision in a contact's plan: (scope id, channel), or (scope id, channel,
#: topic id) for a decision about one topic.
StateKey = tuple[str, Channel] | tuple[str, Channel, str]


@dataclass
class _Contact:
    """A contact as the batch sees it: loaded, or to be created by an earlier row."""

    model: Contact | _Person
    new: bool
    changes: dict[str, Any] = field(default_factory=dict)
    #: ``StateKey`` -> (status, event id or None when planned in this batch); topic
    #: decisions are loaded only for a batch that has topic rows.
    states: dict[StateKey, tuple[ConsentStatus, int | None]] = field(default_factory=dict)
    state_ids: dict[StateKey, str] = field(default_factory=dict)
    suppress: bool = False
    #: The list entry is an erased person's: suppressed on every channel, not only email.
    suppress_all: bool = False
    #: ``str(model.id)``, once.
    cid: str = ""

    def __post_init__(self) -> None:
        self.cid = str(self.model.id)


@dataclass
class _Decision:
    row: ParsedRow
    contact: _Contact
    scope: Scope
    topic: Topic | None = None


class Importer:
    """One import run: the caller, its defaults, and the running summary."""

    def __init__(self, principal: Principal, default_scope: Scope, summary: ImportSummary,
                 config: Any, root: Scope) -> None:
        self.principal = principal
        self.default_scope = default_scope
        self.summary = summary
        self.config = config
        self.root = root
        self.scopes: dict[str, Scope | None] = {str(default_scope.id): default_scope}
        #: The tenant's topics by key, as rows name them (None: no such topic).
        self.topics: dict[str, Topic | None] = {}
        #: ``str(scope.id)`` per scope object of this run (a hot spot in big imports).
        self.scope_ids: dict[int, str] = {}
        #: Ledger ids from here on were written by this run (cross-batch repeats).
        self.first_event_id: int | None = None
        #: A dry run writes nothing: what it planned so far is kept on disk (flat memory).
        self.rehearsal = Rehearsal() if summary.dry_run else None
        #: Dry run: the decisions earlier batches planned for this batch's contacts (key ->
        #: row), so a repeat across batches is reported as the real run reports it.
        self.seen: dict[tuple[str, str, str], int] | None = {} if summary.dry_run else None
        self._ids: list[str] = []

    def _new_id(self) -> str:
        """A fresh time-ordered id for a new row (drawn 1024 at a time)."""
        if not self._ids:
            self._ids = sorted(ordered_uuids(1024), reverse=True)  # popped ascending
        return self._ids.pop()

    def _sid(self, scope: Scope) -> str:
        sid = self.scope_ids.get(id(scope))
        if sid is None:
            sid = self.scope_ids[id(scope)] = str(scope.id)
        return sid

    async def _load_scopes(self, ids: set[str]) -> None:
        missing = [i for i in ids if i not in self.scopes]
        if not missing:
            return
        valid = []
        for sid in missing:
            try:
                valid.append(str(uuid.UUID(sid)))
            except ValueError:
                self.scopes[sid] = None
        found = {str(s.id): s for s in await Scope.filter(id__in=valid,
                                                          tenant_id=self.principal.tenant_id)}
        for sid in valid:
            scope = found.get(sid)
            if scope is not None and not authz.path_is_within(scope.path,
                                                              self.principal.scope_path):
                scope = None
            self.scopes[sid] = scope

    async def parse_batch(self, batch: list[tuple[int, dict[str, Any] | RowError]]
                          ) -> list[ParsedRow]:
        """Validate a batch's rows. Yields to the loop now and then, so the previous
        batch's writes (SQLite works in its own thread) go on meanwhile."""
        now = utcnow()
        summary = self.summary
        parsed: list[ParsedRow] = []
        for i, (number, values) in enumerate(batch):
            if i % 100 == 99:
                await asyncio.sleep(0)
            summary.rows += 1
            if isinstance(values, RowError):
                summary.refuse(values)
                continue
            try:
                parsed.append(parse_row(number, values, now))
            except DomainError as exc:
                summary.refuse(RowError(number, exc.message, exc.field))
        return parsed

    async def run_batch(self, parsed: list[ParsedRow]) -> None:
        """Plan validated rows against the database and write them (one transaction)."""
        now = utcnow()
        summary = self.summary
        if not parsed:
            return
        await self._load_scopes({r.scope_id for r in parsed if r.scope_id})
        tenant = self.principal.tenant_id
        await self._load_topics({r.topic for r in parsed if r.topic})
        emails = {r.email for r in parsed if r.email}
        phones = {r.phone for r in parsed if r.phone}
        whatsapps = {r.whatsapp for r in parsed if r.whatsapp}
        exts = {r.external_id for r in parsed if r.external_id}
        ids = await db.ids_matching("contact", tenant, {
            "email": list(emails), "phone": list(phones), "whatsapp": list(whatsapps),
            "external_id": list(exts)})
        planned: dict[str, PlannedContact] = {}
        if self.rehearsal is not None:
            planned = {p.cid: p for p in self.rehearsal.contacts(
                emails=emails, phones=phones, whatsapps=whatsapps, external_ids=exts)}
            ids = list(set(ids) | {cid for cid, p in planned.items() if not p.new})
        existing = await Contact.filter(id__in=ids) if ids else []
        by: dict[str, dict[str, _Contact]] = {k: {} for k in IDENTITY}
        known: dict[str, _Contact] = {}
        for c in existing:
            known[str(c.id)] = _Contact(c, new=False)
        if self.rehearsal is not None:
            self._recall(known, planned, now)
        for entry in known.values():
            for key in IDENTITY:
                if getattr(entry.model, key):
                    by[key][getattr(entry.model, key)] = entry
        if known:
            for s in await ConsentState.filter(contact_id__in=list(known)):
                entry = known[str(s.contact_id)]
                entry.states[(str(s.scope_id), s.channel)] = (s.status, s.event_id)
                entry.state_ids[(str(s.scope_id), s.channel)] = str(s.id)
            if any(r.topic for r in parsed):
                for t in await TopicConsentState.filter(contact_id__in=list(known)):
                    entry = known[str(t.contact_id)]
                    tkey = (str(t.scope_id), t.channel, str(t.topic_id))
                    entry.states[tkey] = (t.status, t.event_id)
                    entry.state_ids[tkey] = str(t.id)
        if self.rehearsal is not None:
            self.seen = {}
            for st in self.rehearsal.states(known):
                channel = Channel(st.channel)
                known[st.cid].states[(st.scope_id, channel)] = (ConsentStatus(st.status), None)
                self.seen[(st.cid, st.scope_id, channel.value)] = st.row

        decisions: list[_Decision] = []
        touched: dict[str, _Contact] = {}
        in_batch: dict[tuple[str, str, str], int] = {}
        for r in parsed:
            error = self._plan_row(r, by, decisions, touched, in_batch, now)
            if error is not None:
                summary.refuse(error)

        # The suppression list: addresses new to a contact in this batch (one query).
        candidates = [e for e in touched.values() if e.model.suppressed_at is None and
                      e.model.email_suppressed_at is None and (
                          e.new or e.changes.keys() & {"email", "phone", "whatsapp"})]
        listing = candidates and await SuppressionEntry.filter(tenant_id=tenant).exists()
        mine = {id(e): {d for a in (e.model.email, e.model.phone, e.model.whatsapp) if a
                        for d in suppression.digests_of(self.config, a)}
                for e in (candidates if listing else [])}
        digests = set().union(*mine.values()) if mine else set()
        listed = await suppression.listed_origins(tenant, digests) if digests else {}
        if listed:
            for e in candidates:
                hits = mine.get(id(e), set()) & listed.keys()
                if hits:
                    e.suppress = True
                    e.suppress_all = suppression.every_channel(listed[d] for d in hits)
                    summary.suppressed += 1
        summary.events += len(decisions) + sum(1 for e in touched.values() if e.suppress)
        if self.rehearsal is not None:
            self._remember(touched, decisions)
        else:
            await self._write(touched, decisions, now)

    async def _load_topics(self, keys: set[str]) -> None:
        missing = [k for k in keys if k not in self.topics]
        if not missing:
            return
        found = {t.key: t for t in await Topic.filter(tenant_id=self.principal.tenant_id,
                                                       key__in=missing)}
        for key in missing:
            self.topics[key] = found.get(key)

    def _recall(self, known: dict[str, _Contact], planned: dict[str, PlannedContact],
                now: datetime) -> None:
        """Dry run: the batch sees the contacts as the earlier batches left them (created,
        details changed, suppressed), as the real run sees them in the database."""
        assert self.rehearsal is not None
        missing = [cid for cid in known if cid not in planned]
        planned.update((p.cid, p) for p in self.rehearsal.contacts(ids=missing))
        home = self.default_scope
        for cid, p in planned.items():
            entry = known.get(cid)
            if entry is None:
                if not p.new:
                    continue  # erased since, or outside the tenant: the database decides
                entry = known[cid] = _Contact(_Person(
                    id=cid, tenant_id=self.principal.tenant_id, home_scope_id=str(home.id),
                    home_path=home.path, email=p.email, phone=p.phone, whatsapp=p.whatsapp,
                    external_id=p.external_id, locale=p.locale, name=p.name), new=False)
            model = entry.model
            for key, value in (("email", p.email), ("phone", p.phone),
                               ("whatsapp", p.whatsapp), ("external_id", p.external_id),
                               ("locale", p.locale), ("name", p.name)):
                setattr(model, key, value)
            if p.suppressed and model.suppressed_at is None and \
                    model.email_suppressed_at is None:
                model.email_suppressed_at = now

    def _remember(self, touched: dict[str, _Contact], decisions: list[_Decision]) -> None:
        """Dry run: keep what this batch planned for the batches after it."""
        assert self.rehearsal is not None
        self.rehearsal.remember(
            [PlannedContact(e.cid, isinstance(e.model, _Person), e.model.email, e.model.phone,
                            e.model.whatsapp, e.model.external_id, e.model.locale,
                            e.model.name,
                            bool(e.suppress or e.model.suppressed_at or
                                 e.model.email_suppressed_at))
             for e in touched.values()],
            [PlannedState(d.contact.cid, self._sid(d.scope), d.row.channel.value,
                          d.row.status.value, d.row.row)
             for d in decisions if d.row.channel is not None and d.row.status is not None
             and d.topic is None])

    def _plan_row(self, r: ParsedRow, by: dict[str, dict[str, _Contact]],
                  decisions: list[_Decision], touched: dict[str, _Contact],
                  in_batch: dict[tuple[str, str, str], int], now: datetime) -> RowError | None:
        """Plan one row, or say why it is refused (then it has changed nothing)."""
        matches = {id(m): m for m in (by["email"].get(r.email or ""),
                                      by["phone"].get(r.phone or ""),
                                      by["whatsapp"].get(r.whatsapp or ""),
                                      by["external_id"].get(r.external_id or "")) if m}
        if len(matches) > 1:
            return RowError(r.row, "Its email, phone, whatsapp and external_id belong to "
                                   "different contacts.", "email")
        entry = next(iter(matches.values()), None)
        changes: dict[str, Any] = {}
        if entry is None:
            if r.email is None and r.phone is None and r.whatsapp is None:
                return RowError(r.row, "No contact has this external_id, and a new contact "
                                       "needs an email, a phone or a whatsapp.", "external_id")
            home = self.default_scope
            entry = _Contact(_Person(
                id=self._new_id(), tenant_id=self.principal.tenant_id,
                home_scope_id=str(home.id), home_path=home.path, email=r.email, phone=r.phone,
                whatsapp=r.whatsapp, external_id=r.external_id, locale=r.locale or "",
                name=r.name or ""),
                new=True)
            created = True
        else:
            created = False
            model = entry.model
            if isinstance(model, Contact) and not authz.contact_visible(self.principal, model):
                return RowError(r.row, "Another contact of this tenant, outside your key's "
                                       "subtree, already has this email, phone or "
                                       "external_id.", "email")
            changes = {k: v for k, v in (("email", r.email), ("phone", r.phone),
                                         ("whatsapp", r.whatsapp),
                                         ("external_id", r.external_id), ("locale", r.locale),
                                         ("name", r.name))
                       if v is not None and v != getattr(model, k)}
            if changes and entry.new:
                return RowError(r.row, "An earlier row of this file gives this contact "
                                       "different details.", "email")
            if changes and isinstance(model, Contact) and \
                    not authz.contact_details_writable(self.principal, model):
                return RowError(r.row, "The contact belongs to a level above your key's "
                                       "subtree; a key for that level may change its details.",
                                "email")
            for k, v in changes.items():
                other = by[k].get(v) if k in IDENTITY else None
                if other is not None and other is not entry:
                    return RowError(r.row, f"Another contact of this tenant already has this "
                                           f"{k}.", k)
        decision: _Decision | None = None
        key: tuple[str, str, str] | None = None
        if r.status is None:
            # The same contact-only row twice in a batch is reported too.
            key = (entry.cid, "", repr((r.email, r.phone, r.whatsapp, r.external_id, r.locale,
                                        r.name)))
            first = in_batch.get(key)
            if first is not None:
                return RowError(r.row, f"Repeats row {first}.", "email")
        else:
            assert r.channel is not None
            scope = self.scopes.get(r.scope_id) if r.scope_id else self.default_scope
            if scope is None:
                return RowError(r.row, "No such scope in your key's subtree.", "scope")
            sid = self._sid(scope)
            topic: Topic | None = None
            skey: StateKey = (sid, r.channel)
            key = (entry.cid, sid, r.channel.value)
            if r.topic is not None:
                topic = self.topics.get(r.topic)
                if topic is None:
                    return RowError(r.row, unknown_topic(r.topic).message, "topic")
                if topic.archived_at is not None or \
                        str(topic.scope_id) not in scope.ancestor_ids():
                    return RowError(r.row, topic_not_offered(r.topic).message, "topic")
                skey = (sid, r.channel, str(topic.id))
                key = (entry.cid, sid, f"{r.channel.value}/{topic.id}")
            first = in_batch.get(key) or (self.seen.get(key) if self.seen is not None else None)
            if first is not None:
                return RowError(r.row, f"Repeats row {first}: the same contact, scope, "
                                       "channel and topic twice in one file.", "status")
            error = self._plan_decision(r, entry, scope, topic)
            if error is not None:
                return error
            current = entry.states.get(skey)
            if current is None or current[0] != r.status:
                if r.status == ConsentStatus.OPTED_IN and not r.evidence:
                    # An opt-in already held needs no new proof (an export imports back).
                    return RowError(r.row, "An imported opt-in needs evidence: the words the "
                                           "contact agreed to, or where its written consent "
                                           "is.", "evidence")
                decision = _Decision(r, entry, scope, topic)
        # Accepted: put its contact changes and its decision into the plan.
        cid = entry.cid
        if key is not None:
            in_batch[key] = r.row
            if self.seen is not None and r.status is not None:
                self.seen[key] = r.row
        if created:
            for k in IDENTITY:
                if getattr(entry.model, k):
                    by[k][getattr(entry.model, k)] = entry
        for k, v in changes.items():
            if k in IDENTITY and getattr(entry.model, k):
                by[k].pop(getattr(entry.model, k), None)
            setattr(entry.model, k, v)
            entry.changes[k] = v
            if k in IDENTITY:
                by[k][v] = entry
        if decision is not None:
            assert r.status is not None and r.channel is not None
            entry.states[_state_key(self._sid(decision.scope), r.channel, decision.topic)] = (
                r.status, None)
            decisions.append(decision)
        if created or changes or decision is not None:
            touched[cid] = entry
        if created:
            self.summary.created += 1
        elif changes or decision is not None:
            self.summary.updated += 1
        else:
            self.summary.unchanged += 1
        return None

    def _plan_decision(self, r: ParsedRow, entry: _Contact, scope: Scope,
                       topic: Topic | None) -> RowError | None:
        assert r.status is not None and r.channel is not None
        sid = self._sid(scope)
        current = entry.states.get(_state_key(sid, r.channel, topic))
        if current is not None and self.first_event_id is not None and \
                current[1] is not None and current[1] >= self.first_event_id:
            return RowError(r.row, "Repeats an earlier row of this file: the same contact, "
                                   "scope, channel and topic twice in one file.", "status")
        if r.status == ConsentStatus.OPTED_OUT:
            return None
        if topic is not None:
            return self._plan_topic_opt_in(r, entry, scope, topic)
        ancestors = [p for p in scope.path.split("/") if p][:-1]
        for sid in ancestors:
            for ch in Channel:  # every channel and ALL
                st = entry.states.get((sid, ch))
                if st is not None and st[0] == ConsentStatus.OPTED_OUT and covers(ch, r.channel):
                    blocking = self.scopes.get(sid)
                    name = f"'{blocking.name}'" if blocking else "a level above"
                    return RowError(r.row, f"Opted out at {name}, which covers this scope; an "
                                           "import never lifts an opt-out.", "scope")
        for ch in Channel:  # every channel and ALL
            st = entry.states.get((sid, ch))
            if st is not None and st[0] == ConsentStatus.OPTED_OUT and covers(ch, r.channel):
                return RowError(r.row, "The contact opted out here; an import never lifts an "
                                       "opt-out (opting back in needs the contact's "
                                       "confirmation).", "status")
        return None

    def _plan_topic_opt_in(self, r: ParsedRow, entry: _Contact, scope: Scope, topic: Topic
                           ) -> RowError | None:
        """An opt-in to a topic is refused where ``topics.opt_in`` refuses it for a key: an
        opt-out of the topic on the path (here: never lifted by an import), and for a
        marketing topic a general opt-out anywhere on the path (here included)."""
        assert r.channel is not None
        path = scope.ancestor_ids()
        tid = str(topic.id)
        marketing = topic.kind == TopicKind.MARKETING
        for i, sid in enumerate(path):
            for ch in Channel:  # every channel and ALL
                if not covers(ch, r.channel):
                    continue
                mine = entry.states.get((sid, ch, tid))
                general = entry.states.get((sid, ch)) if marketing else None
                mine_out = mine is not None and mine[0] == ConsentStatus.OPTED_OUT
                if not mine_out and not (general is not None and
                                         general[0] == ConsentStatus.OPTED_OUT):
                    continue
                if i == len(path) - 1 and mine_out:
                    return RowError(r.row, f"The contact opted out of '{topic.name}' here; an "
                                           "import never lifts an opt-out (opting back in "
                                           "needs the contact's confirmation).", "status")
                blocking = scope if i == len(path) - 1 else self.scopes.get(sid)
                name = f"'{blocking.name}'" if blocking else "a level above"
                return RowError(r.row, f"Opted out at {name}, which covers '{topic.name}' "
                                       "here; an import never lifts an opt-out.", "scope")
        return None

    async def _write(self, touched: dict[str, _Contact], decisions: list[_Decision],
                     now: datetime) -> None:
        suppressed = [e for e in touched.values() if e.suppress]
        async with db.transaction():
            ids = await db.reserve_event_ids(len(decisions) + len(suppressed))
            if ids and self.first_event_id is None:
                self.first_event_id = ids[0]
            for e in suppressed:
                setattr(e.model, _flag(e), now)
                e.model.suppression_reason = "suppression list"
            changed = [e for e in touched.values() if not e.new and (e.changes or e.suppress)]
            # An email, phone or external id may pass from one contact to another in a
            # batch (row 7 gives A a new address, row 8 creates B with A's old one): the
            # old values are freed first, then set, then new contacts are inserted.
            for e in changed:
                freed = {k: None for k in IDENTITY if k in e.changes}
                if freed:
                    await Contact.filter(id=e.model.id).update(**freed)
            for e in changed:
                values = dict(e.changes)
                if e.suppress:
                    values.update({_flag(e): now, "suppression_reason": "suppression list"})
                await Contact.filter(id=e.model.id).update(updated_at=now, **values)
            await db.insert_rows("contact", PERSON_COLUMNS, [
                e.model.row(now) for e in touched.values() if isinstance(e.model, _Person)])
            written: list[tuple[Any, ...]] = []
            new_states: list[tuple[Any, ...]] = []
            new_topic_states: list[tuple[Any, ...]] = []
            updates: list[tuple[ConsentStatus, int, datetime, str]] = []
            topic_updates: list[tuple[ConsentStatus, int, datetime, str]] = []
            it = iter(ids)
            tenant, actor, file = self.principal.tenant_id, self.principal.actor, self.summary.file
            # The rows ``ledger.decided`` and ``ledger.suppressed`` would write (same
            # actions, channels and data), built as value tuples with reserved ids for one
            # multi-row insert: those constructors create one ORM object per event, which
            # costs more than the insert itself over a million rows.
            for d in decisions:
                r = d.row
                assert r.status is not None and r.channel is not None
                evidence: dict[str, Any] = {"file": file, "row": r.row}
                if r.evidence:
                    evidence["text"] = r.evidence
                event_id = next(it)
                sid = self._sid(d.scope)
                tid = str(d.topic.id) if d.topic is not None else None
                written.append((event_id, tenant, d.contact.cid, sid, d.scope.path, r.channel,
                                Action(r.status.value), Source.IMPORT, actor, evidence, None,
                                None, {}, r.when or now, tid))
                skey = _state_key(sid, r.channel, d.topic)
                state_id = d.contact.state_ids.get(skey)
                if state_id is None:
                    state_id = self._new_id()
                    if tid is None:
                        new_states.append((state_id, tenant, d.contact.cid, sid, d.scope.path,
                                           r.channel.value, r.status.value, event_id, now))
                    else:
                        new_topic_states.append((state_id, tenant, d.contact.cid, sid, tid,
                                                 d.scope.path, r.channel.value,
                                                 r.status.value, event_id, now))
                    d.contact.state_ids[skey] = state_id
                else:
                    (updates if tid is None else topic_updates).append(
                        (r.status, event_id, now, state_id))
                d.contact.states[skey] = (r.status, event_id)
            for e in suppressed:
                written.append((
                    next(it), tenant, e.cid, self._sid(self.root), self.root.path,
                    Channel.ALL if e.suppress_all else Channel.EMAIL, Action.SUPPRESSED,
                    Source.IMPORT, actor,
                    {"file": file, "note": "The address is on the tenant's suppression list."},
                    None, None, {"reason": "suppression list"}, now, None))
            await _insert_events(written)
            await db.insert_rows("consent_state", STATE_COLUMNS, new_states)
            await db.insert_rows("topic_consent_state", TOPIC_STATE_COLUMNS, new_topic_states)
            for status, event_id, at, state_id in updates:
                await ConsentState.filter(id=state_id).update(status=status, event_id=event_id,
                                                              updated_at=at)
            for status, event_id, at, state_id in topic_updates:
                await TopicConsentState.filter(id=state_id).update(
                    status=status, event_id=event_id, updated_at=at)
            if await events.listened(tenant, Source.IMPORT):
                # ORM objects only for the hooks and publishers that receive them, built
                # as rows read back from the database are (they are stored; the values
                # are the columns' own: ``EVENT_COLUMNS`` are the column names), which
                # costs about half of validating keyword arguments.
                for event_values in written:
                    await events.recorded(ConsentEvent._init_from_db(
                        **dict(zip(EVENT_COLUMNS, event_values, strict=True))))


def _state_key(sid: str, channel: Channel, topic: Topic | None) -> StateKey:
    return (sid, channel) if topic is None else (sid, channel, str(topic.id))


def _flag(entry: _Contact) -> str:
    """The contact column a suppression by the list sets (see ``suppression.suppress``)."""
    return "suppressed_at" if entry.suppress_all else "email_suppressed_at"


EVENT_COLUMNS = ("id", "tenant_id", "contact_id", "scope_id", "scope_path", "channel",
                 "action", "source", "actor", "evidence", "ip", "user_agent", "data",
                 "occurred_at", "topic_id")


async def _insert_events(written: list[tuple[Any, ...]]) -> None:
    """Ledger events (values in ``EVENT_COLUMNS`` order, ids reserved), one statement.

    Built as database values directly: an ORM object per event costs more than the
    insert itself in a million-row import."""
    fields_map = ConsentEvent._meta.fields_map
    as_json = fields_map["evidence"].to_db_value
    as_time = fields_map["occurred_at"].to_db_value
    times: dict[datetime, Any] = {}
    rows = []
    for (id_, tenant, contact, scope, path, channel, action, source, actor, evidence, ip,
         agent, data, at, topic) in written:
        when = times.get(at)
        if when is None:
            when = times[at] = as_time(at, ConsentEvent)
        rows.append((id_, str(tenant), contact, scope, path, channel.value, action.value,
                     source.value, actor, as_json(evidence, ConsentEvent), ip, agent,
                     as_json(data, ConsentEvent), when, topic))
    await db.insert_rows("consent_event", EVENT_COLUMNS, rows)


def check_uploader(principal: Principal) -> None:
    """Imports are for admins and owners (API keys with WRITE); partners and contacts none."""
    authz.require(principal, Capability.WRITE)
    if principal.kind not in ("api_key", "system"):
        raise Forbidden("Imports are made with an admin or owner API key.")


async def import_file(
    principal: Principal, path: Path, *, name: str | None = None, fmt: str | None = None,
    scope_id: str | None = None, dry_run: bool = False, max_bytes: int | None = None,
    progress: Progress | None = None, batch_size: int = BATCH_SIZE, cache_mib: int = 64,
) -> ImportSummary:
    """Import one file for ``principal`` (admins and owners, inside their subtree).

    ``cache_mib``: SQLite page cache while the import runs (see ``db.bulk_cache``).
    """
    check_uploader(principal)
    display = name or path.name
    kind = detect_format(display, fmt)
    default_scope = await get_scope(principal, scope_id or principal.scope_id, field="scope")
    if not authz.path_is_within(default_scope.path, principal.scope_path):
        raise Invalid("No such scope.", code=ErrorCode.NOT_FOUND, field="scope")
    check_file(path, kind, max_bytes)
    summary = ImportSummary(file=display[:200], dry_run=dry_run)
    config = await suppression.config_for(principal.tenant_id)
    root = await suppression.root_of(principal.tenant_id)
    importer = Importer(principal, default_scope, summary, config, root)
    try:
        async with db.bulk_cache(cache_mib):
            await _run(importer, path, kind, batch_size, progress)
    finally:
        if importer.rehearsal is not None:
            importer.rehearsal.close()
    return summary


async def _run(importer: Importer, path: Path, kind: str, batch_size: int,
               progress: Progress | None) -> None:
    """Batch N+1 is validated while batch N is written; it is planned after N committed."""
    summary = importer.summary
    writing: asyncio.Task[None] | None = None
    try:
        for batch in _batches(read_rows(path, kind), batch_size):
            parsed = await importer.parse_batch(batch)
            if writing is not None:
                await writing
                if progress is not None:
                    progress(summary)
            writing = asyncio.ensure_future(importer.run_batch(parsed))
            await asyncio.sleep(0)
        if writing is not None:
            await writing
    finally:
        if writing is not None and not writing.done():
            writing.cancel()
            with contextlib.suppress(BaseException):
                await writing
    if progress is not None:
        progress(summary)


def _batches(rows: Iterator[tuple[int, dict[str, Any] | RowError]], size: int
             ) -> Iterator[list[tuple[int, dict[str, Any] | RowError]]]:
    batch: list[tuple[int, dict[str, Any] | RowError]] = []
    for item in rows:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def summary_text(summary: ImportSummary) -> str:
    """The summary for people (the CLI prints it)."""
    out = io.StringIO()
    verb = "would be" if summary.dry_run else "were"
    out.write(f"{summary.file}: {summary.rows} rows; created {summary.created}, updated "
              f"{summary.updated}, unchanged {summary.unchanged}, refused {summary.refused}"
              f" ({summary.suppressed} suppressed by the list; {summary.events} ledger events "
              f"{verb} written)\n")
    for e in summary.errors:
        where = f" [{e.field}]" if e.field else ""
        out.write(f"  row {e.row}{where}: {e.reason}\n")
    if summary.refused > len(summary.errors):
        out.write(f"  ... and {summary.refused - len(summary.errors)} more refused rows\n")
    return out.getvalue()


# --- suppression lists ------------------------------------------------------------------

_HEX = frozenset("0123456789abcdef")


@dataclass
class SuppressionSummary:
    file: str
    dry_run: bool
    rows: int = 0
    added: int = 0
    already_listed: int = 0
    refused: int = 0
    #: Existing contacts suppressed now because they are on the list.
    contacts_suppressed: int = 0
    errors: list[RowError] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "dryRun": self.dry_run, "rows": self.rows,
                "added": self.added, "alreadyListed": self.already_listed,
                "refused": self.refused, "contactsSuppressed": self.contacts_suppressed,
                "errors": [{"row": e.row, "reason": e.reason, "field": e.field}
                           for e in self.errors]}


def _list_entries(path: Path) -> Iterator[tuple[int, str]]:
    """(row, value): one address or SHA-256 hex digest per line (first CSV field); a
    header line ``email``, ``sha256`` or ``hash`` is skipped."""
    with path.open(encoding="utf-8-sig", newline="") as text:
        for number, values in enumerate(csv.reader(text), start=1):
            value = values[0].strip() if values else ""
            if not value or (number == 1 and value.lower() in ("email", "sha256", "hash")):
                continue
            yield number, value


async def import_suppression_list(
    principal: Principal, path: Path, *, name: str | None = None, dry_run: bool = False,
    max_bytes: int | None = None, batch_size: int = BATCH_SIZE,
) -> SuppressionSummary:
    """Put a list of addresses (plain, or SHA-256 of the lower-cased address) on the
    tenant's suppression list and suppress the existing contacts it names.

    Suppression is tenant-wide, so only a key for the whole tenant may do this.
    """
    check_uploader(principal)
    tenant = principal.tenant_id
    root = await suppression.root_of(tenant)
    if principal.kind == "contact" or not authz.path_is_within(root.path,
                                                               principal.scope_path):
        raise DomainError("Only a key for the whole tenant may import a suppression list.",
                          code=ErrorCode.FORBIDDEN)
    display = (name or path.name)[:200]
    check_file(path, "list", max_bytes)
    summary = SuppressionSummary(file=display, dry_run=dry_run)
    config = await suppression.config_for(tenant)
    hashed_seen = False
    batch: list[tuple[int, str]] = []

    async def flush() -> None:
        nonlocal hashed_seen
        digests: dict[str, int] = {}
        emails: dict[str, int] = {}
        for number, value in batch:
            summary.rows += 1
            lower = value.lower()
            if len(lower) == 64 and set(lower) <= _HEX:
                digests.setdefault(lower, number)
                hashed_seen = True
                continue
            try:
                email = normalize_email(value)
            except DomainError as exc:
                summary.refused += 1
                if len(summary.errors) < MAX_REPORTED_ERRORS:
                    summary.errors.append(RowError(number, exc.message, "email"))
                continue
            assert email is not None
            emails.setdefault(email, number)
            digests.setdefault(suppression.salted_digest(config, email), number)
        listed = await suppression.listed_digests(tenant, digests)
        summary.already_listed += len(listed)
        summary.added += len(set(digests) - listed)
        matches = await Contact.filter(tenant_id=tenant, email__in=list(emails),
                                       suppressed_at=None, email_suppressed_at=None
                                       ) if emails else []
        summary.contacts_suppressed += len(matches)
        if dry_run:
            return
        async with db.transaction():
            await suppression.add_entries(tenant, list(digests), SuppressionOrigin.LIST)
            for contact in matches:
                await suppression.suppress(
                    contact, root, actor=principal.actor, source=Source.IMPORT,
                    reason="suppression list",
                    evidence={"file": display, "row": emails[contact.email or ""],
                              "note": "Imported suppression list."})

    for item in _list_entries(path):
        batch.append(item)
        if len(batch) >= batch_size:
            await flush()
            batch = []
    if batch:
        await flush()
    if hashed_seen:
        summary.contacts_suppressed += await _suppress_hashed_matches(
            principal, root, config, display, dry_run)
    return summary


async def _suppress_hashed_matches(principal: Principal, root: Scope, config: Any,
                                   display: str, dry_run: bool) -> int:
    """Hashed entries name nobody: walk the tenant's contacts (keyset, in batches) and
    suppress those whose address's plain SHA-256 is listed."""
    tenant = principal.tenant_id
    after: str | None = None
    count = 0
    while True:
        page = Contact.filter(tenant_id=tenant, suppressed_at=None, email_suppressed_at=None,
                              email__isnull=False)
        if after is not None:
            page = page.filter(id__gt=after)
        rows = await page.order_by("id").limit(BATCH_SIZE)
        if not rows:
            return count
        after = str(rows[-1].id)
        by_digest = {suppression.plain_digest(c.email or ""): c for c in rows}
        hits = await suppression.listed_digests(tenant, by_digest)
        count += len(hits)
        if hits and not dry_run:
            async with db.transaction():
                for digest in hits:
                    contact = await Contact.get(id=by_digest[digest].id)
                    await suppression.suppress(
                        contact, root, actor=principal.actor, source=Source.IMPORT,
                        reason="suppression list",
                        evidence={"file": display, "note": "Imported suppression list "
                                                           "(hashed address)."})
