"""Change events: hooks inside the writing transaction, publication after commit.

- ``on_event_in_transaction(hook)``: runs for every ledger event inside the transaction
  that writes it (for outboxes that must commit together with the change).
- ``set_publisher(fn)``: receives the committed events of one transaction, in ledger
  order, after commit (the app wires it to Litestar channels). A rollback publishes
  nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from prefcenter import db
from prefcenter.models import ConsentEvent

log = logging.getLogger(__name__)

InTransactionHook = Callable[[ConsentEvent], Awaitable[None]]
Publisher = Callable[[Sequence[ConsentEvent]], Awaitable[None]]

_in_transaction_hooks: list[InTransactionHook] = []
_publishers: dict[str, Publisher] = {}


def on_event_in_transaction(hook: InTransactionHook) -> InTransactionHook:
    if hook not in _in_transaction_hooks:
        _in_transaction_hooks.append(hook)
    return hook


def listened() -> bool:
    """Whether any hook or publisher would receive events (bulk writers skip building
    ORM objects for events nobody receives)."""
    return bool(_in_transaction_hooks or _publishers)


def set_publisher(name: str, publisher: Publisher | None) -> None:
    """Install (or with ``None`` remove) a named after-commit publisher."""
    if publisher is None:
        _publishers.pop(name, None)
    else:
        _publishers[name] = publisher


async def recorded(event: ConsentEvent) -> None:
    """Called by the ledger for each new event, inside its transaction."""
    for hook in _in_transaction_hooks:
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
