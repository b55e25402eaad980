"""The email channel's scope settings and their validators: pure (no database, no service).

``optOutConfirmationEmail``: ``true`` sends a confirmation mail after a contact's own
email opt-out (seed 002).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

OPT_OUT_CONFIRMATION_SETTING = "optOutConfirmationEmail"


def check_opt_out_confirmation(value: Any, above: Sequence[Mapping[str, Any]]) -> list[str]:
    if isinstance(value, bool):
        return []
    return [f"'{OPT_OUT_CONFIRMATION_SETTING}' must be true or false."]


#: The email channel's settings: key -> validator.
SETTINGS = {
    OPT_OUT_CONFIRMATION_SETTING: check_opt_out_confirmation,
}
