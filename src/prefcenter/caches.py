"""Process-local caches of rarely changing facts, and how a change reaches every process.

The hot path (authentication, ``decision``) reads a few facts that change rarely and
are read on nearly every request: verified API keys, scope paths with their policies and
settings. Reading them from the database each time cost more than the rest of the request
(issue #20), so each process keeps them in a bounded map (``TtlCache``).

Correctness with several server processes:

- a change made through any process calls ``invalidate_after_commit`` (revoking a key,
  updating a scope): once its transaction has committed, the entry is dropped in this
  process, and
  - every process on the same host sees it before its next cache read: the change
    writes a new random value into a small shared epoch file (``HostEpoch``, memory
    mapped, one per database: next to a SQLite file, in the temporary folder for
    PostgreSQL) and each cache read compares that value first (a few hundred
    nanoseconds); a changed epoch empties this process's caches. So "revoked through
    one process, refused by the next request to another" holds without Redis, which
    is the embedded deployment (several processes on one SQLite file);
  - processes on other hosts hear it through the change fan-out (the Litestar channels
    plugin with Redis pub/sub, ``PREFCENTER_REDIS_URL``; ``stream/invalidation.py``
    wires it), typically within milliseconds;
- whatever happens to that notification (Redis briefly away, a change made by the CLI
  or straight in SQL, several processes sharing a SQLite file without Redis), no entry
  is used longer than ``max_age`` seconds after it was read (``cache_max_age_seconds``,
  5 s by default): that is the stated bound on staleness;
- a read that raced with an invalidation does not put the old value back: ``put`` takes
  the generation seen before the read and is ignored when an invalidation came between.

Entries hold no secrets: API keys are cached by the SHA-256 of the secret, as stored.
"""

from __future__ import annotations

import hashlib
import json
import logging
import mmap
import os
import tempfile
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Generic, TypeVar

from prefcenter import db

log = logging.getLogger(__name__)

K = TypeVar("K")
V = TypeVar("V")

#: The default bound on staleness, in seconds (``Settings.cache_max_age_seconds``).
DEFAULT_MAX_AGE = 5.0

Broadcaster = Callable[[bytes], Awaitable[None]]

#: The key that invalidates a whole cache.
EVERYTHING = "*"
#: The caches, by kind: verified API keys by secret hash (``services.tenancy.auth``); scope paths
#: by scope id (``services.consent.resolution``), invalidated whole by any scope update.
API_KEYS = "api_key"
SCOPE_PATHS = "scope_path"


EPOCH_SIZE = 8


class HostEpoch:
    """A value shared by every process of one host through a memory-mapped file.

    ``bump`` writes a fresh random value (never a counter: two processes bumping at once
    must still leave a value each reader has not seen); ``read`` is a memory read.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < EPOCH_SIZE:
                os.pwrite(fd, bytes(EPOCH_SIZE), 0)
            self._map = mmap.mmap(fd, EPOCH_SIZE)
        finally:
            os.close(fd)

    def read(self) -> bytes:
        return self._map[:EPOCH_SIZE]

    def bump(self) -> None:
        self._map[:EPOCH_SIZE] = os.urandom(EPOCH_SIZE)

    def close(self) -> None:
        self._map.close()


def epoch_path(database_url: str) -> Path | None:
    """Where the processes using ``database_url`` on this host share their epoch."""
    scheme, _, rest = database_url.partition("://")
    if scheme == "sqlite":
        file = rest.split("?", 1)[0]
        if not file or file == ":memory:":
            return None
        return Path(file).resolve().with_name(Path(file).name + "-cache-epoch")
    # PostgreSQL: one file per server and database (the password is not part of the name).
    host = rest.rpartition("@")[2]
    digest = hashlib.sha256(f"{scheme}://{host}".encode()).hexdigest()[:24]
    return Path(tempfile.gettempdir()) / f"prefcenter-cache-epoch-{os.getuid()}-{digest}"


_epoch: HostEpoch | None = None
_seen_epoch = bytes(EPOCH_SIZE)


def _sync() -> None:
    """Empty every cache when another process of this host changed something cached."""
    global _seen_epoch
    if _epoch is not None:
        current = _epoch.read()
        if current != _seen_epoch:
            _seen_epoch = current
            for cache in _caches.values():
                cache.clear()


class TtlCache(Generic[K, V]):
    """A bounded LRU map whose entries expire ``max_age`` seconds after they were read."""

    def __init__(self, kind: str, max_size: int, max_age: float = DEFAULT_MAX_AGE,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.kind = kind
        self.max_size = max_size
        self.max_age = max_age
        self._clock = clock
        self._items: OrderedDict[K, tuple[float, V]] = OrderedDict()
        #: Bumped by every invalidation; see ``put``.
        self.generation = 0

    def get(self, key: K) -> V | None:
        _sync()
        item = self._items.get(key)
        if item is None:
            return None
        if self._clock() - item[0] >= self.max_age:
            del self._items[key]
            return None
        return item[1]

    def put(self, key: K, value: V, generation: int) -> None:
        """Keep ``value``, read when ``self.generation`` was ``generation``, unless an
        invalidation came since (then the read may predate the change: drop it)."""
        _sync()
        if generation != self.generation or self.max_age <= 0:
            return
        self._items[key] = (self._clock(), value)
        self._items.move_to_end(key)
        while len(self._items) > self.max_size:
            self._items.popitem(last=False)

    def discard(self, key: K) -> None:
        self.generation += 1
        self._items.pop(key, None)

    def clear(self) -> None:
        self.generation += 1
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


_caches: dict[str, TtlCache[object, object]] = {}
_broadcaster: Broadcaster | None = None


def register(cache: TtlCache[K, V]) -> TtlCache[K, V]:
    """Make ``cache`` reachable by ``invalidate`` under its ``kind``."""
    _caches[cache.kind] = cache  # type: ignore[assignment]
    return cache


def configure(max_age: float, database_url: str | None = None) -> None:
    """Set every cache's bound on staleness and share an epoch with the other processes
    of this host using ``database_url`` (from settings, when the app or CLI starts)."""
    global _epoch, _seen_epoch
    for cache in _caches.values():
        cache.max_age = max_age
        cache.clear()
    path = epoch_path(database_url) if database_url else None
    if _epoch is not None and _epoch.path != path:
        _epoch.close()
        _epoch = None
    if path is not None and _epoch is None:
        try:
            _epoch = HostEpoch(path)
        except OSError as exc:
            log.warning("no shared cache epoch at %s (%s): other processes of this host "
                        "see changes within %.0f s", path, exc, max_age)
    if _epoch is not None:
        _seen_epoch = _epoch.read()


def clear_all() -> None:
    for cache in _caches.values():
        cache.clear()


def set_broadcaster(broadcaster: Broadcaster | None) -> None:
    """Install (or with None remove) what carries invalidations to other processes."""
    global _broadcaster
    _broadcaster = broadcaster


def encode(kind: str, key: str) -> bytes:
    return json.dumps({"k": kind, "i": key}, separators=(",", ":")).encode()


def apply(raw: bytes) -> None:
    """An invalidation from the fan-out (another process's, or our own echo)."""
    try:
        data = json.loads(raw)
        cache = _caches.get(str(data["k"]))
        key = str(data["i"])
    except (ValueError, TypeError, KeyError):
        log.warning("unreadable cache invalidation %r: clearing every cache", raw[:100])
        clear_all()
        return
    if cache is not None:
        _drop(cache, key)


def _drop(cache: TtlCache[object, object], key: str) -> None:
    if key == EVERYTHING:
        cache.clear()
    else:
        cache.discard(key)


async def invalidate(kind: str, key: str) -> None:
    """Drop ``key`` here now and tell the other processes."""
    cache = _caches.get(kind)
    if cache is not None:
        _drop(cache, key)
    if _epoch is not None:
        _epoch.bump()
    if _broadcaster is not None:
        try:
            await _broadcaster(encode(kind, key))
        except Exception:
            log.exception("cache invalidation not sent; other processes catch up within "
                          "%.0f s", cache.max_age if cache else DEFAULT_MAX_AGE)


async def invalidate_after_commit(kind: str, key: str) -> None:
    """``invalidate`` once the open transaction commits (at once when none is open)."""
    uow = db.open_unit_of_work()
    if uow is None:
        await invalidate(kind, key)
        return

    async def later() -> None:
        await invalidate(kind, key)

    uow.after_commit(later)
