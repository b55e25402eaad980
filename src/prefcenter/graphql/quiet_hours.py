"""Quiet hours (issue #14): the contact's time zone, the hours in effect at a scope, and
the contact's own stricter hours."""

from __future__ import annotations

from enum import StrEnum

import strawberry

from prefcenter.errors import Invalid
from prefcenter.graphql.base import GInfo, guard, mutation_errors, query_errors
from prefcenter.graphql.consent import ConsentChangeResult, EvidenceInput, _payload, _request
from prefcenter.graphql.contacts import self_or
from prefcenter.graphql.types import Channel, ScopeNode, Source, _readable_scope
from prefcenter.models import Scope
from prefcenter.services.consent import changes as svc
from prefcenter.services.consent import quiet_hours


@strawberry.enum(description="Where a contact's time zone comes from, first that applies.")
class TimeZoneSource(StrEnum):
    EXPLICIT = "EXPLICIT"  # set on the contact (timeZone)
    PHONE = "PHONE"  # the one zone of the phone number's region
    SCOPE = "SCOPE"  # the scope setting timeZone, inherited down the tree
    UTC = "UTC"  # nothing known


@strawberry.type(description="A daily quiet window in local time: no messages from start to "
                 "end; it crosses midnight when start is later than end (21:00-08:00).")
class QuietWindow:
    start: str = strawberry.field(description="First quiet minute, HH:MM.")
    end: str = strawberry.field(description="First minute messages may go again, HH:MM.")

    @classmethod
    def of(cls, w: quiet_hours.Window | None) -> QuietWindow | None:
        return cls(**w.as_dict()) if w is not None else None


@strawberry.type(description="The quiet hours of one channel at a scope.")
class ChannelQuietHours:
    channel: Channel = strawberry.field(
        description="A channel of the registry (EMAIL, SMS, WHATSAPP; not ALL).")
    scope_hours: QuietWindow | None = strawberry.field(
        description="The scope's quiet hours (setting quietHours, most specific on the "
        "path); null: none.")
    own_hours: QuietWindow | None = strawberry.field(
        description="The contact's own stricter quiet hours; null: none.")
    set_by_scope: strawberry.Private[Scope | None] = None

    @strawberry.field(description="The scope whose setting gives scopeHours.")
    def set_by(self, info: GInfo) -> ScopeNode | None:
        return _readable_scope(info, self.set_by_scope)


@strawberry.type(description="A contact's local time and its quiet hours at a scope.")
class QuietHours:
    time_zone: str = strawberry.field(description="The IANA zone quiet hours are read in.")
    time_zone_source: TimeZoneSource = strawberry.field(description="Where it comes from.")
    channels: list[ChannelQuietHours] = strawberry.field(
        description="Each channel of the registry, in its order (EMAIL, SMS, WHATSAPP).")


@strawberry.input(description="The contact's own stricter quiet hours for one channel.")
class QuietHoursInput:
    contact_id: strawberry.ID | None = strawberry.field(
        default=None, description="The contact; omit with a contact token.")
    scope_id: strawberry.ID | None = strawberry.field(
        default=None, description="The page's scope: the hours must include its quiet "
        "hours; omit with a contact token for the link's scope.")
    channel: Channel = strawberry.field(
        description="A channel of the registry (EMAIL, SMS, WHATSAPP; not ALL).")
    start: str | None = strawberry.field(default=None, description="First quiet minute, HH:MM.")
    end: str | None = strawberry.field(default=None,
                                       description="First minute messages may go again, HH:MM.")
    clear: bool = strawberry.field(default=False, description="Remove them.")
    source: Source | None = strawberry.field(default=None, description="Where it came from.")
    evidence: EvidenceInput | None = strawberry.field(default=None,
                                                      description="The words shown.")


def _scope_or(info: GInfo, scope_id: str | None) -> str:
    """An omitted scope id means the scope of the contact's link."""
    principal = info.context.principal
    if scope_id:
        return str(scope_id)
    if principal is not None and principal.is_contact:
        return principal.scope_id
    raise Invalid("'scopeId' is required.", field="scopeId")


@strawberry.type
class Query:
    @strawberry.field(description="A contact's time zone and the quiet hours in effect at a "
                      "scope (omitted with a contact token: the link's), per channel (its own "
                      "stricter ones too).")
    @query_errors
    async def quiet_hours(self, info: GInfo, scope_id: strawberry.ID | None = None,
                          contact_id: strawberry.ID | None = None) -> QuietHours:
        principal = guard(info)
        view = await svc.quiet_hours_of(principal, self_or(info, contact_id),
                                        _scope_or(info, scope_id))
        return QuietHours(
            time_zone=view.time_zone, time_zone_source=TimeZoneSource(view.time_zone_source),
            channels=[ChannelQuietHours(channel=c.channel, scope_hours=QuietWindow.of(
                c.scope_window), own_hours=QuietWindow.of(c.own_window),
                set_by_scope=c.set_by) for c in view.channels])


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Set (or clear) the contact's own quiet hours for a "
                         "channel: stricter only, they must include the scope's.")
    @mutation_errors
    async def set_quiet_hours(self, info: GInfo, input: QuietHoursInput) -> ConsentChangeResult:
        principal = guard(info)
        change = await svc.set_quiet_hours(
            principal, self_or(info, input.contact_id), _scope_or(info, input.scope_id),
            input.channel,
            _request(info, principal, input.source, input.evidence), start=input.start,
            end=input.end, clear=input.clear)
        return _payload(change)
