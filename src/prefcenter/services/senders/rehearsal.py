"""What a dry-run import has planned so far, on disk: flat memory for any file size.

A real import writes batch after batch, and each batch is planned against what the
earlier ones wrote (a contact created by row 10 is matched by row 9,000; a decision
repeated later in the file is reported). A dry run writes nothing to the database, so it
keeps the same knowledge here instead: a private SQLite file in a temporary directory
(deleted at the end), with a small page cache, written and read once per batch. In
memory it would grow with the file (about 100 bytes a row: 100 MB for a million rows).

Remembered per contact the run created or changed: its id, identity and details and
whether the suppression list names it; per planned decision: contact, scope, channel,
status and the row that planned it.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

#: Page cache of the file (KiB): bounded, whatever the import's size.
CACHE_KIB = 8 * 1024
#: Values per ``IN (...)`` list (under SQLite's variable limit on any build).
CHUNK = 900


@dataclass(frozen=True, slots=True)
class PlannedContact:
    cid: str
    #: Created by this run (not in the database).
    new: bool
    email: str | None
    phone: str | None
    whatsapp: str | None
    external_id: str | None
    locale: str
    name: str
    suppressed: bool


@dataclass(frozen=True, slots=True)
class PlannedState:
    cid: str
    scope_id: str
    channel: str
    status: str
    row: int


_SCHEMA = """
CREATE TABLE contact (cid TEXT PRIMARY KEY, new INTEGER NOT NULL, email TEXT, phone TEXT,
                      whatsapp TEXT, external_id TEXT, locale TEXT NOT NULL, name TEXT NOT NULL,
                      suppressed INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX contact_email ON contact (email);
CREATE INDEX contact_phone ON contact (phone);
CREATE INDEX contact_whatsapp ON contact (whatsapp) WHERE whatsapp IS NOT NULL;
CREATE INDEX contact_external_id ON contact (external_id);
CREATE TABLE state (cid TEXT NOT NULL, scope_id TEXT NOT NULL, channel TEXT NOT NULL,
                    status TEXT NOT NULL, row INTEGER NOT NULL,
                    PRIMARY KEY (cid, scope_id, channel)) WITHOUT ROWID;
"""


def _opt(value: object) -> str | None:
    return None if value is None else str(value)


def _chunks(values: Sequence[str]) -> Iterable[Sequence[str]]:
    for i in range(0, len(values), CHUNK):
        yield values[i:i + CHUNK]


class Rehearsal:
    """The dry run's plan so far (``close()`` deletes it)."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="prefcenter-dry-run-")
        self._db = sqlite3.connect(Path(self._dir.name) / "plan.sqlite3",
                                   isolation_level=None)
        self._db.executescript(f"PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; "
                               f"PRAGMA cache_size = -{CACHE_KIB}; PRAGMA temp_store = FILE;"
                               + _SCHEMA)

    def close(self) -> None:
        self._db.close()
        self._dir.cleanup()

    def _select(self, sql: str, column: str, values: Iterable[str]) -> list[tuple[object, ...]]:
        found: list[tuple[object, ...]] = []
        unique = sorted(set(values))
        for part in _chunks(unique):
            marks = ", ".join("?" for _ in part)
            found += self._db.execute(f"{sql} WHERE {column} IN ({marks})",
                                      list(part)).fetchall()
        return found

    def contacts(self, *, ids: Iterable[str] = (), emails: Iterable[str] = (),
                 phones: Iterable[str] = (), whatsapps: Iterable[str] = (),
                 external_ids: Iterable[str] = ()) -> list[PlannedContact]:
        """The planned contacts with one of these ids or identities."""
        sql = ("SELECT cid, new, email, phone, whatsapp, external_id, locale, name, suppressed "
               "FROM contact")
        rows: dict[str, PlannedContact] = {}
        for column, values in (("cid", ids), ("email", emails), ("phone", phones),
                               ("whatsapp", whatsapps), ("external_id", external_ids)):
            for cid, new, email, phone, whatsapp, ext, locale, name, suppressed in \
                    self._select(sql, column, values):
                rows[str(cid)] = PlannedContact(
                    str(cid), bool(new), _opt(email), _opt(phone), _opt(whatsapp), _opt(ext),
                    str(locale), str(name), bool(suppressed))
        return list(rows.values())

    def states(self, cids: Iterable[str]) -> list[PlannedState]:
        """The decisions planned for these contacts."""
        return [PlannedState(str(cid), str(sid), str(ch), str(status), int(str(row)))
                for cid, sid, ch, status, row in self._select(
                    "SELECT cid, scope_id, channel, status, row FROM state", "cid", cids)]

    def remember(self, contacts: Iterable[PlannedContact], states: Iterable[PlannedState]
                 ) -> None:
        """Add (or replace) what a batch planned."""
        self._db.execute("BEGIN")
        self._db.executemany(
            "INSERT OR REPLACE INTO contact VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(c.cid, int(c.new), c.email, c.phone, c.whatsapp, c.external_id, c.locale, c.name,
              int(c.suppressed)) for c in contacts])
        self._db.executemany("INSERT OR REPLACE INTO state VALUES (?, ?, ?, ?, ?)",
                             [(s.cid, s.scope_id, s.channel, s.status, s.row)
                              for s in states])
        self._db.execute("COMMIT")
