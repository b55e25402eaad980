"""Contact links: what a sender puts in a message, and what each link lets the contact do.

A link is ``<public_url>/<prefix>/<secret>``; the secret is a contact token (stored only
as a hash) bound to one contact, one purpose, one scope and one channel, expiring. The
link is the whole credential: no login, no cookie. What a link may touch:

- ``/u/`` (UNSUBSCRIBE): opt out at the token's scope, or at one of the levels above it
  that the page offers (seed 000 "this study" / "all studies of the account"; seed 002
  the levels a tenant configures with the per-scope setting ``unsubscribeLevels``).
- ``/ni/`` (NOT_INTERESTED): mute or unmute exactly the token's scope (seed 001).
- ``/c/`` (CONFIRM_OPT_BACK_IN): see ``services.consent.confirmations``.
- ``/p/`` (PREFERENCES): the preference page, a bearer token for GraphQL.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from prefcenter import db
from prefcenter.errors import Invalid, NotFound
from prefcenter.models import Contact, ContactToken, NotInterested, Scope, Tenant
from prefcenter.models.enums import Channel, Source, TokenPurpose
from prefcenter.services.consent import changes
from prefcenter.services.people.contacts import get_contact
from prefcenter.services.senders import suppression
from prefcenter.services.tenancy import auth, authz
from prefcenter.services.tenancy.principals import Capability, Principal
from prefcenter.services.tenancy.scopes import get_scope, inherited_setting, path_of
from prefcenter.services.tenancy.settings import LEVELS_KEY
from prefcenter.settings import Settings

log = logging.getLogger(__name__)

#: URL prefix of each link kind.
PREFIX = {
    TokenPurpose.UNSUBSCRIBE: "u",
    TokenPurpose.NOT_INTERESTED: "ni",
    TokenPurpose.CONFIRM_OPT_BACK_IN: "c",
    TokenPurpose.PREFERENCES: "p",
}
#: CAN-SPAM: an unsubscribe link must keep working for 30 days after sending.
MIN_LINK_TTL = timedelta(days=30)
#: Per-scope setting naming the levels an unsubscribe page offers (seed 002), e.g.
#: ``["User", "Client", "Group"]`` (scope kinds on the path) or ``"all"``; checked when
#: written (``services.tenancy.settings``).
LEVELS_SETTING = LEVELS_KEY
ONE_CLICK_BODY = "List-Unsubscribe=One-Click"


def link_ttl(settings: Settings) -> timedelta:
    return max(timedelta(days=settings.link_ttl_days), MIN_LINK_TTL)


def link_url(settings: Settings, purpose: TokenPurpose, secret: str) -> str:
    return f"{settings.public_url.rstrip('/')}/{PREFIX[purpose]}/{secret}"


@dataclass(frozen=True)
class ContactLinks:
    """What a sender puts into one message for one contact."""

    unsubscribe_url: str
    list_unsubscribe: str
    list_unsubscribe_post: str
    not_interested_url: str
    preferences_url: str
    expires_at: datetime
    #: Signed (contact, scope) for the email provider's feedback: a complaint about the
    #: message opts out here (issue 13; ``services.channels.email.feedback``).
    feedback_tag: str = ""


async def issue_links(
    principal: Principal, contact_id: str, scope_id: str, channel: Channel, settings: Settings,
) -> ContactLinks:
    """Fresh links for one message about ``scope`` (keys with WRITE: the senders)."""
    authz.require(principal, Capability.WRITE)
    scope = await get_scope(principal, scope_id)
    if not authz.path_is_within(scope.path, principal.scope_path):
        raise NotFound("No such scope.", field="scopeId")
    contact = await get_contact(principal, contact_id)
    # The preference page opens the sender's own part of the tree (and the levels above
    # it, where the contact may opt out of everything): a subtree's sender, who sees the
    # URL, must not gain a tenant-wide view of the contact through it.
    home = await get_scope(principal, principal.scope_id)
    ttl = link_ttl(settings)
    async with db.transaction():
        unsub = await auth.issue_contact_token(contact, scope, TokenPurpose.UNSUBSCRIBE, ttl,
                                               channel=channel)
        mute = await auth.issue_contact_token(contact, scope, TokenPurpose.NOT_INTERESTED, ttl,
                                              channel=channel)
        prefs = await auth.issue_contact_token(contact, home, TokenPurpose.PREFERENCES, ttl)
        config = await suppression.config_for(str(contact.tenant_id))
    unsubscribe_url = link_url(settings, TokenPurpose.UNSUBSCRIBE, unsub.secret)
    return ContactLinks(
        unsubscribe_url=unsubscribe_url,
        list_unsubscribe=f"<{unsubscribe_url}>",
        list_unsubscribe_post=ONE_CLICK_BODY,
        not_interested_url=link_url(settings, TokenPurpose.NOT_INTERESTED, mute.secret),
        preferences_url=link_url(settings, TokenPurpose.PREFERENCES, prefs.secret),
        expires_at=unsub.token.expires_at,
        feedback_tag=suppression.feedback_tag(config, str(contact.id), str(scope.id)),
    )


# --- opening a link ---------------------------------------------------------------------


@dataclass
class Link:
    """An opened, live link: its token with contact, scope and tenant loaded."""

    token: ContactToken
    tenant: Tenant

    @property
    def contact(self) -> Contact:
        return self.token.contact

    @property
    def scope(self) -> Scope:
        return self.token.scope

    @property
    def channel(self) -> Channel:
        return Channel(self.token.channel)

    @property
    def principal(self) -> Principal:
        return auth.principal_from_token(self.token)


async def open_link(secret: str, purpose: TokenPurpose) -> Link:
    """The link behind ``secret``, or ``auth.TokenError`` (unknown/tampered or expired)."""
    token = await auth.resolve_contact_token(secret, {purpose})
    tenant = await Tenant.get(id=token.contact.tenant_id)
    return Link(token=token, tenant=tenant)


# --- unsubscribe ------------------------------------------------------------------------


@dataclass(frozen=True)
class Level:
    """A scope an unsubscribe page offers, and how it relates to the link's scope."""

    scope: Scope
    #: ``self`` (the link's scope), ``ancestor`` (a level above it) or ``root`` (everything).
    relation: str

    @property
    def id(self) -> str:
        return str(self.scope.id)


def _relation(scope: Scope, link_scope: Scope) -> str:
    if scope.parent_id is None:
        return "root"
    return "self" if scope.id == link_scope.id else "ancestor"


async def unsubscribe_levels(scope: Scope) -> list[Level]:
    """The levels to offer, narrowest first; the link's own scope is always one of them.

    Default (seed 000): the scope and its parent ("this study", "all studies of the
    account"). A tenant may name the levels with the per-scope setting
    ``unsubscribeLevels`` (inherited down the tree): a list of scope kinds on the path,
    e.g. ``["User", "Client", "Group"]`` (seed 002), or ``"all"``.
    """
    path = await path_of(scope)
    above = list(reversed(path[:-1]))  # parent first
    configured = inherited_setting(path, LEVELS_SETTING)
    if configured is None:
        chosen = above[:1]
    elif configured == "all":
        chosen = above
    elif isinstance(configured, list) and all(isinstance(k, str) for k in configured):
        kinds = {k.strip().casefold() for k in configured}
        chosen = [s for s in above if s.kind.casefold() in kinds]
    else:
        log.warning("scope %s: ignoring malformed %s setting %r", scope.id, LEVELS_SETTING,
                    configured)
        chosen = above[:1]
    return [Level(scope, _relation(scope, scope))] + [Level(s, _relation(s, scope))
                                                      for s in chosen]


def pick_level(levels: list[Level], level_id: str | None) -> Level:
    """The offered level with this id; anything else (another scope, another tenant's
    scope, garbage) is refused."""
    for level in levels:
        if level.id == (level_id or "").strip():
            return level
    raise Invalid("Choose one of the levels this link offers.", field="level")


async def unsubscribe(link: Link, level: Level, request: changes.Request) -> changes.Change:
    """Opt out at an offered level for the link's channel (the page's own form)."""
    return await changes.opt_out(link.principal, str(link.contact.id), level.id, link.channel,
                                 request)


async def one_click(link: Link, request: changes.Request) -> changes.Change:
    """RFC 8058: opt out at the link's own scope and channel. Repeating changes nothing."""
    assert request.source == Source.ONE_CLICK
    return await changes.opt_out(link.principal, str(link.contact.id), str(link.scope.id),
                                 link.channel, request)


# --- not interested ---------------------------------------------------------------------


async def is_muted(link: Link) -> bool:
    return await NotInterested.exists(contact_id=link.contact.id, scope_id=link.scope.id)


async def set_not_interested(link: Link, muted: bool, request: changes.Request
                             ) -> changes.Change:
    """Mute (``True``) or "I've changed my mind" (``False``) for exactly the link's scope."""
    return await changes.set_not_interested(link.principal, str(link.contact.id),
                                            str(link.scope.id), muted, request)


# --- describing a scope to a person -----------------------------------------------------


@dataclass(frozen=True)
class Target:
    """How a page or mail names a scope: ``relation`` is ``self`` (one thing), ``ancestor``
    (a level with others below it) or ``root`` (everything from the tenant)."""

    relation: str
    name: str
    kind: str


async def describe(scope: Scope) -> Target:
    if scope.parent_id is None:
        relation = "root"
    elif await Scope.exists(parent_id=scope.id):
        relation = "ancestor"
    else:
        relation = "self"
    return Target(relation=relation, name=scope.name, kind=scope.kind)


def describe_level(level: Level) -> Target:
    return Target(relation=level.relation, name=level.scope.name, kind=level.scope.kind)


def mask_email(email: str) -> str:
    """``ada@example.com`` -> ``a**@example.com``: enough to recognise, not to harvest."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}{'*' * max(len(local) - 1, 2)}@{domain}"
