"""Migration operations of our own, shared by the migration files.

SQLite cannot alter a column: Tortoise's ``AlterField`` rebuilds the whole table there,
which fails on a table other rows reference (``consent_event``) and drops the unique
indexes of others (``contact``). Where a change means nothing to SQLite's schema (an enum
description, a VARCHAR length it does not enforce, a default that Tortoise applies in
Python), ``AlterFieldNotOnSqlite`` skips it there; PostgreSQL alters as usual.
"""

from __future__ import annotations

from typing import Any

from tortoise.migrations import operations as ops


class AlterFieldNotOnSqlite(ops.AlterField):
    """An ``AlterField`` that SQLite skips (see the module docstring)."""

    async def database_forward(self, app_label: Any, old_state: Any, new_state: Any,
                               state_editor: Any = None) -> None:
        if state_editor is not None and state_editor.client.capabilities.dialect == "sqlite":
            return
        await super().database_forward(app_label, old_state, new_state, state_editor)

    async def database_backward(self, app_label: Any, old_state: Any, new_state: Any,
                                state_editor: Any = None) -> None:
        if state_editor is not None and state_editor.client.capabilities.dialect == "sqlite":
            return
        await super().database_backward(app_label, old_state, new_state, state_editor)
