"""Fan-out of committed ledger events through Litestar channels, and the live feed.

After each commit, ``publisher`` sends one small notification per tenant: the new
events' ids, scope paths, channels and contacts (no personal data, no evidence). The
channels backend carries it to every process: in memory within one process, Redis
pub/sub across processes (``PREFCENTER_REDIS_URL``).

``feed`` turns those notifications into a subscriber's stream. It subscribes first,
then reads the ledger after its position (the ``after`` cursor, or the newest event),
and after each relevant notification reads again: the database is the single source of
truth, so ordering is the ledger's, a lost notification costs only latency (a safety-net
read runs every ``stream_poll_seconds``), and nothing is delivered twice because the
position only moves forward.

Reading is shared: per process and tenant a ``Tail`` keeps the newest events and one
query after a notification serves every live subscriber, each filtering in memory. A
subscriber behind the tail (replaying from an old cursor) pages through the ledger
itself until it has caught up.

Memory is bounded: per tenant the tail (``TAIL_SIZE`` events), per subscriber one page
and a notification queue of at most ``stream_subscriber_backlog`` entries, and the
WebSocket send waits while the socket's buffer is full. A subscriber that lets its
queue fill (it reads too slowly for the rate of changes) gets ``SlowSubscriber`` and is
disconnected; it resumes with ``after`` and loses nothing.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from typing import Any, cast

from litestar.channels import ChannelsPlugin
from litestar.channels.backends.base import ChannelsBackend
from litestar.channels.backends.memory import MemoryChannelsBackend
from litestar.channels.subscriber import Subscriber

from prefcenter.events import Publisher
from prefcenter.models import ConsentEvent
from prefcenter.models.enums import PRIVATE_ACTIONS
from prefcenter.services.consent import changefeed, ledger
from prefcenter.settings import Settings

CHANNEL_PREFIX = "prefcenter.consent."
#: Events listed in one notification; beyond that it just says "read the ledger".
MAX_LISTED = 100
#: Rows read from the ledger at a time.
PAGE = 100
#: Events a tenant's shared tail keeps in memory.
TAIL_SIZE = 500
#: PostgreSQL: how soon to look again at a hole in the ids (a commit in flight).
HOLE_RETRY_SECONDS = 0.05
PUBLISH_TIMEOUT_SECONDS = 2.0

#: WebSocket close codes (private range 4000-4999).
SLOW_SUBSCRIBER_CLOSE_CODE = 4013
CREDENTIAL_REVOKED_CLOSE_CODE = 4403


class SlowSubscriber(Exception):
    """The subscriber fell further behind than its backlog allows."""

    def __init__(self, resume_after: str) -> None:
        super().__init__(resume_after)
        self.resume_after = resume_after

    @property
    def reason(self) -> str:
        return f"Subscriber too slow; reconnect with after={self.resume_after}"


def channel_for(tenant_id: str) -> str:
    return CHANNEL_PREFIX + tenant_id


class StreamChannels(ChannelsPlugin):
    """The app's channels plugin; owns the Redis client when there is one."""

    def __init__(self, backend: ChannelsBackend, redis_client: Any = None, **kw: Any) -> None:
        super().__init__(backend, **kw)
        self.redis_client = redis_client
        self.tails = Tails()

    async def close_client(self) -> None:
        if self.redis_client is not None:
            await self.redis_client.aclose()
            self.redis_client = None


class StreamSubscriber(Subscriber):
    """A channels subscriber whose queue never blocks the fan-out and notes overflow.

    The plugin drops a notification when the queue is full (``backoff`` strategy); this
    subclass remembers that it happened, so the feed can disconnect the subscriber.
    """

    overflowed: bool = False

    def put_nowait(self, item: bytes | None) -> bool:
        accepted = super().put_nowait(item)
        if not accepted and item is not None:
            self.overflowed = True
        return accepted

    async def put(self, item: bytes | None) -> None:
        # ``unsubscribe`` puts a ``None`` to end the stream; on a full queue the stock
        # ``put`` would wait forever for a reader that is gone.
        if item is None:
            self.discard_pending()
        self.put_nowait(item)

    def discard_pending(self) -> None:
        with suppress(asyncio.QueueEmpty):
            while True:
                self._queue.get_nowait()
                self._queue.task_done()

    async def next_messages(self, wait_seconds: float) -> list[bytes | None]:
        """Wait up to ``wait_seconds`` for a notification, then take all that are queued."""
        try:
            first = await asyncio.wait_for(self._queue.get(), wait_seconds)
        except TimeoutError:
            return []
        self._queue.task_done()
        items: list[bytes | None] = [first]
        with suppress(asyncio.QueueEmpty):
            while True:
                items.append(self._queue.get_nowait())
                self._queue.task_done()
        return items


def make_plugin(settings: Settings) -> StreamChannels:
    """Memory backend by default; Redis pub/sub when ``redis_url`` is set."""
    backend: ChannelsBackend
    client: Any = None
    if settings.redis_url:
        import redis.asyncio
        from litestar.channels.backends.redis import RedisChannelsPubSubBackend

        client = redis.asyncio.Redis.from_url(settings.redis_url)
        backend = RedisChannelsPubSubBackend(redis=client)
    else:
        backend = MemoryChannelsBackend()
    return StreamChannels(
        backend,
        client,
        arbitrary_channels_allowed=True,
        subscriber_max_backlog=max(1, settings.stream_subscriber_backlog),
        subscriber_backlog_strategy="backoff",
        subscriber_class=StreamSubscriber,
    )


def encode(tenant_id: str, events: Sequence[ConsentEvent]) -> bytes:
    """``{"t": tenant, "m": newest id, "e": [[id, path, channel, contact, private], ...]}``;
    ``e`` is null for a big transaction (then every subscriber of the tenant reads)."""
    listed: list[list[Any]] | None = [
        [e.id, e.scope_path, e.channel.value, str(e.contact_id), e.action in PRIVATE_ACTIONS]
        for e in events] if len(events) <= MAX_LISTED else None
    newest = max(e.id for e in events)
    return json.dumps({"t": tenant_id, "m": newest, "e": listed},
                      separators=(",", ":")).encode()


def relevant(raw: bytes, f: changefeed.ChangeFilter, position: int) -> int | None:
    """The newest id a notification announces, if it could hold an event for ``f`` after
    ``position``; ``0`` when it could but does not say which; None when it cannot."""
    try:
        data = json.loads(raw)
        newest = int(data["m"])
        listed = data.get("e")
        if newest <= position:
            return None
        if listed is None:
            return newest
        if any(int(item[0]) > position and f.matches(
                path=item[1], channel=item[2], contact_id=item[3], private=bool(item[4]))
               for item in listed):
            return newest
        return None
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        return 0  # unreadable: read the ledger to be safe


def make_publisher(plugin: ChannelsPlugin) -> Publisher:
    async def publish(committed: Sequence[ConsentEvent]) -> None:
        by_tenant: dict[str, list[ConsentEvent]] = defaultdict(list)
        for event in committed:
            by_tenant[str(event.tenant_id)].append(event)
        for tenant_id, items in by_tenant.items():
            # In this task: ``asyncio.wait_for`` (Python 3.11) runs the publication in a
            # task of its own and waits for it, three turns of the event loop before the
            # change's answer is sent; under the 50-client mix each turn is milliseconds
            # (issue #20: writes p50 110 ms against reads 21 ms).
            async with asyncio.timeout(PUBLISH_TIMEOUT_SECONDS):
                await plugin.wait_published(encode(tenant_id, items), [channel_for(tenant_id)])

    return publish


class Tail:
    """The newest events of one tenant, read once for all of this process's subscribers.

    Holds every event of the tenant with an id in (``lo``, ``hi``]; a subscriber whose
    position is in that range filters it in memory instead of querying the database. A
    notification makes the first subscriber to need it read what is new (one query,
    shared by everyone waiting, ``catch_up``).
    """

    def __init__(self, tenant_id: str, start: int, settle: float | None) -> None:
        self.selection = changefeed.tenant_wide(tenant_id)
        self.events: deque[ConsentEvent] = deque()
        self.lo = self.hi = start
        self.settle = settle
        self.users = 0
        self._reading: asyncio.Task[None] | None = None
        self._held_back = False  # the last read stopped in front of a hole
        self._more = False  # the last read was a full page

    def covers(self, position: int) -> bool:
        return position >= self.lo

    async def catch_up(self, upto: int | None) -> bool:
        """Read until ``hi >= upto`` (or once when None). False when a hole holds it back."""
        while True:
            if self._reading is None:
                self._reading = asyncio.create_task(self._read())
            reading = self._reading
            try:
                await asyncio.shield(reading)
            finally:
                if self._reading is reading and reading.done():
                    self._reading = None
            if upto is None or self.hi >= upto:
                return True
            if self._held_back or not self._more:
                return False

    async def _read(self) -> None:
        batch = await changefeed.read_after(self.selection, self.hi, limit=PAGE,
                                         settle=self.settle)
        self.events.extend(batch.events)
        self.hi = max(self.hi, batch.position)
        while len(self.events) > TAIL_SIZE:
            self.lo = self.events.popleft().id
        self._held_back, self._more = batch.held_back, batch.full

    def after(self, f: changefeed.ChangeFilter, position: int) -> changefeed.Batch:
        """What ``f`` selects after ``position`` (which ``covers``), from memory."""
        newer: list[ConsentEvent] = []
        for event in reversed(self.events):  # ascending ids: the new ones are at the end
            if event.id <= position:
                break
            newer.append(event)
        found = [event for event in reversed(newer) if f.accepts(event)]
        if len(found) > PAGE:
            return changefeed.Batch(found[:PAGE], found[PAGE - 1].id, held_back=False, full=True)
        return changefeed.Batch(found, self.hi, held_back=False, full=False)


class Tails:
    """This process's tails, one per tenant with live subscribers."""

    def __init__(self) -> None:
        self._tails: dict[str, Tail] = {}

    @asynccontextmanager
    async def use(self, tenant_id: str, settle: float | None) -> AsyncIterator[Tail]:
        tail = self._tails.get(tenant_id)
        if tail is None:
            tail = Tail(tenant_id, await changefeed.head(settle), settle)
            tail = self._tails.setdefault(tenant_id, tail)
        tail.users += 1
        try:
            yield tail
        finally:
            tail.users -= 1
            if tail.users == 0 and self._tails.get(tenant_id) is tail:
                del self._tails[tenant_id]


async def feed(plugin: StreamChannels, f: changefeed.ChangeFilter, after_id: int | None,
               settings: Settings, *,
               reauthenticate: Callable[[], Awaitable[None]] | None = None,
               ) -> AsyncIterator[ConsentEvent]:
    """The events ``f`` selects, in ledger order: those after ``after_id`` first, then live.

    Raises ``SlowSubscriber`` when the subscriber's notification backlog overflowed and
    whatever ``reauthenticate`` raises when the credential stopped being valid.
    """
    settle = None if settings.is_sqlite else settings.stream_gap_settle_seconds
    async with plugin.start_subscription([channel_for(f.tenant_id)]) as channel, \
            plugin.tails.use(f.tenant_id, settle) as tail:
        subscriber = cast(StreamSubscriber, channel)
        # Subscribed before the first read: anything committed from here on is either
        # in that read or announced afterwards.
        position = after_id if after_id is not None else tail.hi
        next_auth = time.monotonic() + settings.stream_reauth_seconds
        wake: int | None = None  # what woke it: the newest id announced (0: unknown)
        while True:
            if subscriber.overflowed:
                raise SlowSubscriber(ledger.event_cursor(position))
            caught_up = True
            if tail.covers(position):
                caught_up = await tail.catch_up(wake or None)
            if tail.covers(position):  # again: reading may have dropped old events
                batch = tail.after(f, position)
                batch.held_back = not caught_up
            else:
                # Behind what the tail holds (replaying): read the ledger itself. Every
                # event up to the tail's ``hi`` had committed before this read began.
                reachable = tail.hi
                batch = await changefeed.read_after(f, position, limit=PAGE, settle=settle)
                if not batch.full and not batch.held_back:
                    batch.position = max(batch.position, reachable)
            for event in batch.events:
                yield event
                position = event.id
                if subscriber.overflowed:
                    raise SlowSubscriber(ledger.event_cursor(position))
            position = max(position, batch.position)
            if batch.full:
                # More is waiting; notifications until now are covered by reading on.
                subscriber.discard_pending()
                wake = position
                continue
            if reauthenticate is not None and time.monotonic() >= next_auth:
                await reauthenticate()
                next_auth = time.monotonic() + settings.stream_reauth_seconds
            wake = await _wait(subscriber, f, position, settings, batch.held_back,
                               next_auth if reauthenticate is not None else None)
            if wake is None:
                return  # unsubscribed: the server is shutting down


async def _wait(subscriber: StreamSubscriber, f: changefeed.ChangeFilter, position: int,
                settings: Settings, held_back: bool, next_auth: float | None) -> int | None:
    """Until a relevant notification, a safety-net poll, a hole retry or re-auth is due.

    Returns the newest id announced (0 for a timeout: read whatever is new), None when
    the subscription was ended by the plugin.
    """
    deadline = time.monotonic() + (HOLE_RETRY_SECONDS if held_back
                                   else settings.stream_poll_seconds)
    if next_auth is not None:
        deadline = min(deadline, next_auth)
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return 0
        messages = await subscriber.next_messages(remaining)
        if not messages:
            return 0
        if None in messages:
            return None
        announced = [relevant(m, f, position) for m in messages if m is not None]
        if any(a is not None for a in announced):
            return max(a for a in announced if a is not None)
