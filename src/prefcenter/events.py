"""Change events: hooks inside the writing transaction, publication after commit.

- ``on_event_in_transaction(hook, interested=...)``: runs for every ledger event inside
  the transaction that writes it (for outboxes that must commit together with the
  change). ``interested(tenant_id, source)``, when given, says whether the hook can do
  anything with a tenant's events from that source: a bulk writer (the import) asks
  ``listened`` once per batch and skips building a million event objects nobody needs.
- ``set_publisher(fn)``: receives the committed events of one transaction, in ledger
  order, after commit (the app wires it to Litestar channels). A rollback publishes
  nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from prefcenter import db
from prefcenter.models import ConsentEvent
from prefcenter.models.enums import Source

log = logging.getLogger(__name__)

InTransactionHook = Callable[[ConsentEvent], Awaitable[None]]
Interest = Callable[[str, Source], Awaitable[bool]]
Publisher = Callable[[Sequence[ConsentEvent]], Awaitable[None]]

_in_transaction_hooks: list[tuple[InTransactionHook, Interest | None]] = []
_publishers: dict[str, Publisher] = {}


def on_event_in_transaction(hook: InTransactionHook, interested: Interest | None = None
                            ) -> InTransactionHook:
    if all(h is not hook for h, _ in _in_transaction_hooks):
        _in_transaction_hooks.append((hook, interested))
    return hook


def off_event_in_transaction(hook: InTransactionHook) -> None:
    _in_transaction_hooks[:] = [(h, i) for h, i in _in_transaction_hooks if h is not hook]


async def listened(tenant_id: str, source: Source) -> bool:
    """Whether a publisher, or a hook interested in them, would receive a tenant's events
    from ``source`` (inside the writing transaction: hooks may look at the database)."""
    if _publishers:
        return True
    for _, interested in _in_transaction_hooks:
        if interested is None or await interested(tenant_id, source):
            return True
    return False


def set_publisher(name: str, publisher: Publisher | None) -> None:
    """Install (or with ``None`` remove) a named after-commit publisher."""
    if publisher is None:
        _publishers.pop(name, None)
    else:
        _publishers[name] = publisher


async def recorded(event: ConsentEvent) -> None:
    """Called by the ledger for each new event, inside its transaction."""
    for hook, _ in _in_transaction_hooks:
        await hook(event)
    uow = db.current_unit_of_work()
    pending: list[ConsentEvent] | None = uow.items.get("events")
    if pending is None:
        pending = uow.items["events"] = []

        async def publish() -> None:
            for name, publisher in list(_publishers.items()):
                try:
                    await publisher(pending)
                except Exception:
                    log.exception("publisher %s failed; subscribers resume from the ledger", name)

        uow.after_commit(publish)
    pending.append(event)
