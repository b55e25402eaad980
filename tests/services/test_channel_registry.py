"""The channel registry is complete, and every scope setting has an owner and a validator.

A channel missing a word in some language, an address field the contact does not have,
or a setting key claimed twice fails here, not at run time in a page or a decision.
"""

from __future__ import annotations

from typing import Any

import pytest

from prefcenter.models import Contact
from prefcenter.models.enums import Channel, Policy
from prefcenter.services.channels.registry import (
    ALL_CHANNELS,
    CHANNELS,
    EMAIL_SUPPRESSED,
    by_inbound_prefix,
    spec,
)
from prefcenter.services.consent.explain import describe
from prefcenter.services.consent.resolution import Decision, Reason
from prefcenter.services.tenancy.settings import SCOPE_SETTINGS
from prefcenter.templates import messages
from tests.factories import World

SCOPE_SETTING = """mutation($s: ID!, $x: JSON) { updateScope(input: {scopeId: $s,
  settings: $x}) { __typename ... on Error { code message field } } }"""


def test_every_channel_but_all_has_a_complete_spec() -> None:
    assert set(CHANNELS) == set(Channel) - {Channel.ALL}
    contact_fields = Contact._meta.fields_map
    prefixes = [s.inbound_prefix for s in CHANNELS.values() if s.inbound_prefix is not None]
    assert len(prefixes) == len(set(prefixes)), "two channels claim one inbound prefix"
    for channel, s in CHANNELS.items():
        assert s.channel == channel and spec(channel.value) is s
        assert s.address_field in contact_fields, s
        assert isinstance(s.default_policy, Policy)
        for lang in messages.SUPPORTED:  # one word table per language, every channel in it
            words = messages.texts(lang)[s.words_key]
            assert words.strip() and words != s.words_key
        if s.inbound_prefix is not None:
            assert s.keyword_source is not None, f"{channel}: keywords change what source?"
        for key, check in s.settings.items():
            assert key in SCOPE_SETTINGS and callable(check)


def test_facts_that_differ_between_channels_come_from_the_spec() -> None:
    assert spec(Channel.WHATSAPP).default_policy == Policy.CONSENT_REQUIRED
    assert spec(Channel.SMS).default_policy == Policy.CONSENT_REQUIRED
    assert spec(Channel.EMAIL).default_policy == Policy.ALLOWED
    assert [c for c in ALL_CHANNELS if spec(c).opt_out_confirmation_mail] == [Channel.EMAIL]
    assert set(EMAIL_SUPPRESSED) == {Channel.EMAIL, Channel.ALL}
    assert by_inbound_prefix("whatsapp:+14155550100") == (CHANNELS[Channel.WHATSAPP],
                                                          "+14155550100")
    assert by_inbound_prefix("WhatsApp:+14155550100")[0].channel == Channel.WHATSAPP
    assert by_inbound_prefix("+14155550100") == (CHANNELS[Channel.SMS], "+14155550100")
    assert by_inbound_prefix("messenger:abc")[0].channel == Channel.SMS  # unknown: not ours


@pytest.mark.parametrize("reason", list(Reason))
@pytest.mark.parametrize("channel", list(ALL_CHANNELS))
def test_every_channel_is_explained_in_words(channel: Channel, reason: Reason) -> None:
    """A new channel is never a KeyError inside ``Decision.explanation``."""
    text = describe(Decision(contact_id="c", scope_id="s", channel=channel, allowed=False,
                             reason=reason), None)
    assert text and "channel." not in text


def test_every_setting_has_one_owner() -> None:
    owners = {key: s.owner for key, s in SCOPE_SETTINGS.items()}
    channel_keys = [k for s in CHANNELS.values() for k in s.settings]
    assert len(channel_keys) == len(set(channel_keys))
    assert all(owners[k].startswith("channels.") for k in channel_keys)
    assert set(owners) >= {"channels", "optInMode", "defaultLanguage", "texts",
                           "unsubscribeLevels", "optOutConfirmationEmail", "smsKeywords",
                           "smsRevocationPolicy", "smsStopNotice", "smsStopNoticeText"}


VALID: dict[str, Any] = {
    "channels": ["WHATSAPP"], "optInMode": {"WHATSAPP": "SINGLE"}, "defaultLanguage": "de",
    "texts": {"de": {"unsub.title": "Abmelden"}}, "unsubscribeLevels": ["Client"],
    "optOutConfirmationEmail": True, "smsKeywords": {"languages": ["en", "de"]},
    "smsRevocationPolicy": "OPT_OUT", "smsStopNotice": False,
    "smsStopNoticeText": {"en": "Text STOP to quit"},
    "quietHours": {"SMS": "TCPA"}, "timeZone": "Europe/Berlin",
}
MALFORMED: list[tuple[str, Any]] = [
    ("optOutConfirmationEmail", "yes"),
    ("optOutConfirmationEmail", 1),
    ("unsubscribeLevels", 5),
    ("unsubscribeLevels", ["Client", 3]),
    ("unsubscribeLevels", "everything"),
    ("channels", ["WHATSAPP", "FAX"]),
    ("optInMode", {"WHATSAPP": "TWICE"}),
    ("defaultLanguage", "xx"),
    ("smsStopNotice", "no"),
    ("smsKeywords", {"colour": "blue"}),
    ("nobodysSetting", True),
]


def test_every_setting_accepts_a_valid_value() -> None:
    assert set(VALID) == set(SCOPE_SETTINGS)  # a new key needs a valid example here
    for key, value in VALID.items():
        assert SCOPE_SETTINGS[key].check(value, []) == [], key


@pytest.mark.parametrize(("key", "value"), MALFORMED)
async def test_a_malformed_setting_is_refused_naming_it_and_nothing_is_stored(
        world: World, key: str, value: Any) -> None:
    before = (await world.gql("{ scopes { id settings } }"))["scopes"]
    for scope in ("account", "number"):
        result = (await world.gql(SCOPE_SETTING, {
            "s": world.sid(scope), "x": {"defaultLanguage": "de", key: value}}))["updateScope"]
        assert (result["__typename"], result["code"], result["field"]) == (
            "OperationError", "INVALID", f"settings.{key}"), result
        assert key in result["message"]
    created = await world.gql("""mutation($p: ID!, $x: JSON) { createScope(input: {
        parentId: $p, kind: "Study", name: "Bad", settings: $x}) { __typename
        ... on Error { field } } }""", {"p": world.sid("account"), "x": {key: value}})
    assert created["createScope"] == {"__typename": "OperationError",
                                      "field": f"settings.{key}"}
    assert (await world.gql("{ scopes { id settings } }"))["scopes"] == before


async def test_valid_settings_are_stored_and_null_removes_one(world: World) -> None:
    result = (await world.gql(SCOPE_SETTING, {"s": world.sid("account"), "x": {
        "optOutConfirmationEmail": True, "unsubscribeLevels": "all"}}))["updateScope"]
    assert result == {"__typename": "ScopePayload"}
    result = (await world.gql(SCOPE_SETTING, {"s": world.sid("account"), "x": {
        "optOutConfirmationEmail": None}}))["updateScope"]
    assert result == {"__typename": "ScopePayload"}
    data = await world.gql("query($s: ID!) { scope(id: $s) { settings } }",
                           {"s": world.sid("account")})
    assert data["scope"]["settings"] == {"unsubscribeLevels": "all"}


def test_a_raising_validator_fits_the_table() -> None:
    """``raising`` adapts a ``check(settings)`` that raises ``Invalid`` (one line per key):
    its error goes through as it is, naming the exact field."""
    from prefcenter.errors import Invalid
    from prefcenter.services.tenancy.settings import raising

    def check(settings: dict[str, Any]) -> None:
        if settings["x"] != 1:
            raise Invalid("'x' must be 1.", field="settings.x.deep")

    adapted = raising("x", check)
    assert adapted(1, []) == []
    with pytest.raises(Invalid) as refused:
        adapted(2, [])
    assert (refused.value.message, refused.value.field) == ("'x' must be 1.", "settings.x.deep")
