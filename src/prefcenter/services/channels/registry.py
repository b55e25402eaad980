"""Every channel prefcenter speaks, in one explicit map: what differs between them is here.

A ``ChannelSpec`` is plain data (no database, no service): which contact field holds the
address, the default policy of a scope where no scope on the path set one, whether the
contact's own opt-out is confirmed by mail, the catalog key of its words (one word table
per language: ``prefcenter/locale/<lang>/LC_MESSAGES/messages.po``, shared by pages, mail,
explanations and the preference page), the scope settings it owns with their validators,
and how a Twilio-compatible inbound message names it. Code that needs a channel's fact
asks ``spec(channel)``; nothing compares against ``Channel.SMS`` to find out.

This module imports only enums and the channels' pure settings modules, so every layer
(``tenancy`` included) may read it without an import circle.

A new channel (push, voice): a value in ``models.enums.Channel``, one line here, its
package under ``services/channels/<name>/`` and a migration (see the README, "Adding a
channel").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from prefcenter.models.enums import Channel, Policy, Source
from prefcenter.services.channels.email import settings as email_settings
from prefcenter.services.channels.sms import settings as sms_settings

#: A scope setting's validator: the new value (never None: None removes a key) and the
#: settings of the scopes above (root..parent) -> problems in words (empty: valid).
SettingCheck = Callable[[Any, Sequence[Mapping[str, Any]]], list[str]]


@dataclass(frozen=True)
class ChannelSpec:
    """What one channel is (see the module docstring)."""

    channel: Channel
    #: The ``Contact`` field holding this channel's address (``email``, ``phone``, ...).
    address_field: str
    #: The policy where no scope on the path sets one.
    default_policy: Policy
    #: A contact's own opt-out on this channel is confirmed by mail where the scope's
    #: ``optOutConfirmationEmail`` asks for it (seed 002): email only, never a text.
    opt_out_confirmation_mail: bool = False
    #: The tenant's email suppression (the suppression list, a hard bounce) blocks it.
    email_suppression: bool = False
    #: The scope settings this channel owns: key -> validator.
    settings: Mapping[str, SettingCheck] = field(default_factory=dict)
    #: How a Twilio-compatible inbound message names this channel: the prefix of its
    #: ``From`` and ``To`` (``whatsapp:+14155550100``); None: it has no inbound messages.
    inbound_prefix: str | None = None
    #: The ledger source of a change made by a keyword sent on this channel.
    keyword_source: Source | None = None
    #: Offered (a switch on the preference page) where no scope's ``channels`` setting
    #: says otherwise; a channel a tenant has to turn on first says False.
    offered_by_default: bool = True

    @property
    def words_key(self) -> str:
        """The catalog key of the channel's words ("text messages", "SMS", ...)."""
        return f"channel.{self.channel.value}"

    @property
    def policy_key(self) -> str:
        """Its key in ``Scope.policies``."""
        return self.channel.value


#: The registry: one entry per channel, in the order pages show them.
CHANNELS: Mapping[Channel, ChannelSpec] = {
    Channel.EMAIL: ChannelSpec(
        Channel.EMAIL, "email", Policy.ALLOWED, opt_out_confirmation_mail=True,
        email_suppression=True, settings=email_settings.SETTINGS),
    Channel.SMS: ChannelSpec(
        Channel.SMS, "phone", Policy.CONSENT_REQUIRED, settings=sms_settings.SETTINGS,
        inbound_prefix="", keyword_source=Source.SMS_KEYWORD),
    Channel.WHATSAPP: ChannelSpec(
        Channel.WHATSAPP, "whatsapp", Policy.CONSENT_REQUIRED, inbound_prefix="whatsapp:",
        keyword_source=Source.WHATSAPP_KEYWORD, offered_by_default=False),
}

#: Every channel one can reach a contact on, in the order pages show them.
ALL_CHANNELS: tuple[Channel, ...] = tuple(CHANNELS)

#: The channels a scope offers where no ``channels`` setting says otherwise.
OFFERED_BY_DEFAULT: tuple[Channel, ...] = tuple(
    c for c, s in CHANNELS.items() if s.offered_by_default)

#: Channels a decision about which honours the tenant's email suppression (``ALL`` too:
#: it covers email).
EMAIL_SUPPRESSED = frozenset({c for c, s in CHANNELS.items() if s.email_suppression}
                             | {Channel.ALL})


def spec(channel: Channel | str) -> ChannelSpec:
    """The spec of a channel (not ``ALL``: that is no channel of its own)."""
    return CHANNELS[Channel(channel)]


def by_inbound_prefix(address: str) -> tuple[ChannelSpec, str]:
    """The channel a Twilio-style ``From``/``To`` names and the address without its
    prefix: ``whatsapp:+1415...`` -> (WhatsApp, ``+1415...``); no prefix -> SMS."""
    head, sep, rest = address.partition(":")
    if sep:
        for s in CHANNELS.values():
            if s.inbound_prefix and s.inbound_prefix == f"{head.lower()}:":
                return s, rest
    return CHANNELS[Channel.SMS], address
