"""``consentProof`` (issue #21): the chain of ledger events behind a current state.

Every step is a ledger event with its evidence, so the proof is read from the ledger and
nothing else (state = ledger, see ``ledger.verify_invariants``):

- a confirmed request (double opt-in): REQUESTED (who or which form asked, when, the
  words shown, IP and user agent), MAILED (message id, time sent; one per mail), and
  CONFIRMED (time, IP, user agent of the link's POST); the events are tied together by
  the request id in their ``data``;
- a pending request: REQUESTED and MAILED so far (the proof is not complete);
- an answered SMS question: ASKED (the words texted) and ANSWERED (the reply);
- anything else: the one DECIDED event that set the state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from prefcenter.errors import NotFound
from prefcenter.models import ConsentEvent, ConsentState
from prefcenter.models.enums import Action, Channel, ConsentStatus
from prefcenter.services.people.contacts import get_contact
from prefcenter.services.tenancy import authz
from prefcenter.services.tenancy.principals import Capability, Principal
from prefcenter.services.tenancy.scopes import get_scope


class Step(StrEnum):
    REQUESTED = "REQUESTED"
    MAILED = "MAILED"
    CONFIRMED = "CONFIRMED"
    ASKED = "ASKED"
    ANSWERED = "ANSWERED"
    DECIDED = "DECIDED"


REQUESTS = {Action.OPT_BACK_IN_REQUESTED, Action.CONFIRMATION_REQUESTED}


@dataclass
class Proof:
    state: ConsentState | None
    steps: list[tuple[Step, ConsentEvent]] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """A confirmed request with its mail, or an answered question, or a plain decision."""
        kinds = [s for s, _ in self.steps]
        if Step.REQUESTED in kinds:
            return Step.CONFIRMED in kinds and Step.MAILED in kinds
        return bool(kinds)


async def consent_proof(principal: Principal, contact_id: str, scope_id: str,
                        channel: Channel) -> Proof:
    """The chain for the contact's current state at exactly this scope and channel."""
    authz.require_any(principal, Capability.READ_EVENTS, Capability.SELF)
    contact = await get_contact(principal, contact_id)
    scope = await get_scope(principal, scope_id)
    if not authz.path_in_reach(principal, scope.path):
        raise NotFound("No such scope.", field="scopeId")
    state = await ConsentState.get_or_none(contact_id=contact.id, scope_id=scope.id,
                                           channel=channel)
    if state is None:
        return Proof(None)
    deciding = await ConsentEvent.get(id=state.event_id)
    request_id = (deciding.data or {}).get("requestId")
    question_id = (deciding.data or {}).get("questionId")
    if not request_id and not question_id:
        return Proof(state, [(Step.DECIDED, deciding)])
    related = [e for e in await ConsentEvent.filter(
        contact_id=contact.id, scope_id=scope.id).order_by("id")
        if (e.data or {}).get("requestId" if request_id else "questionId") ==
        (request_id or question_id)]
    steps: list[tuple[Step, ConsentEvent]] = []
    for event in related:
        if event.action in REQUESTS:
            steps.append((Step.REQUESTED, event))
        elif event.action == Action.CONFIRMATION_MAILED:
            steps.append((Step.MAILED, event))
        elif event.action == Action.CONSENT_ASKED:
            steps.append((Step.ASKED, event))
    if state.status != ConsentStatus.PENDING:
        steps.append((Step.ANSWERED if question_id else Step.CONFIRMED, deciding))
    return Proof(state, steps)
