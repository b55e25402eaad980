"""The preference page's overview: one contact's decision for every scope it can see.

A contact's tree can have many scopes; asking ``decision`` once per scope and channel
would cost a round trip (or an alias) each. ``my_decisions`` answers them all with a
fixed number of queries, whatever the size of the tree, through the same pure
``resolution.resolve`` that answers ``decision``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from prefcenter.errors import ErrorCode, Forbidden
from prefcenter.models import ContactToken, Scope, Tenant
from prefcenter.models.enums import Channel, TokenPurpose
from prefcenter.services.channels.registry import ALL_CHANNELS
from prefcenter.services.common import utcnow
from prefcenter.services.consent import resolution as res
from prefcenter.services.people.contacts import get_contact
from prefcenter.services.tenancy import auth
from prefcenter.services.tenancy.principals import Principal
from prefcenter.services.tenancy.scopes import list_scopes

#: What the page shows when it asks for no channel in particular: every channel.
DEFAULT_CHANNELS: tuple[Channel, ...] = ALL_CHANNELS


async def my_decisions(
    principal: Principal, channels: Sequence[Channel] | None = None,
    *, now: datetime | None = None,
) -> list[res.Decision]:
    """The contact's decision for each scope of its tree (``scopes``) and channel.

    Ordered like ``scopes`` (root first), then by channel as asked. Queries: the tree (2),
    the contact (1), and per channel the facts ``resolve`` needs (3, or 4 with a cap).
    """
    if not principal.is_contact or principal.contact_id is None:
        raise Forbidden("Only a contact's own link may ask for its overview.")
    wanted: list[Channel] = []
    for channel in channels or DEFAULT_CHANNELS:
        res.check_channel(channel)
        if channel not in wanted:
            wanted.append(channel)
    now = now or utcnow()
    scopes = await list_scopes(principal)
    contact = await get_contact(principal, principal.contact_id)
    by_id: dict[str, Scope] = {str(s.id): s for s in scopes}
    # Every ancestor of a visible scope is visible to a contact, so each path is complete.
    paths = {sid: [by_id[a] for a in s.ancestor_ids() if a in by_id] for sid, s in by_id.items()}
    cid = str(contact.id)
    out: list[res.Decision] = []
    per_channel: dict[Channel, dict[str, res.Decision]] = {}
    for channel in wanted:
        # The facts for the whole tree at once: ``_facts`` only uses the scopes' ids.
        states, mutes, freqs, sends = await res._facts([cid], scopes, channel, now)
        per_channel[channel] = {
            sid: res.resolve(contact=contact, path=path, channel=channel,
                             states=states.get(cid, ()), mutes=mutes.get(cid, ()),
                             frequencies=freqs.get(cid, ()), sends=sends.get(cid, ()),
                             now=now).for_principal(principal)
            for sid, path in paths.items()
        }
    for scope in scopes:
        for channel in wanted:
            out.append(per_channel[channel][str(scope.id)])
    return out


@dataclass(frozen=True)
class LinkCheck:
    """What opening a preference link finds, without changing anything."""

    #: ``ok``, ``expired`` or ``invalid`` (unknown, revoked, tampered or another purpose).
    state: str
    #: The organisation's name, to say whose link it is (not for invalid links).
    organisation: str = ""


async def check_preference_link(secret: str) -> LinkCheck:
    """Read-only: is this a live PREFERENCES link, and whose? Used by ``GET /p/{token}``."""
    try:
        token = await auth.resolve_contact_token(secret, {TokenPurpose.PREFERENCES})
    except auth.TokenError as exc:
        if exc.code != ErrorCode.EXPIRED:
            return LinkCheck("invalid")
        expired = await ContactToken.get_or_none(
            token_hash=auth.hash_secret(secret)).select_related("contact")
        tenant = await Tenant.get_or_none(id=expired.contact.tenant_id) if expired else None
        return LinkCheck("expired", tenant.name if tenant else "")
    tenant = await Tenant.get_or_none(id=token.contact.tenant_id)
    return LinkCheck("ok", tenant.name if tenant else "")
