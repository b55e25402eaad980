"""Which channels a scope offers (``Scope.channels``): the one rule in services.tenancy.scopes.

The preference page shows a switch only for these. Before, every scope offered Email and
Text, so a sending phone number showed an Email switch (issue 19).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from prefcenter.models.enums import TokenPurpose
from prefcenter.services.tenancy import auth
from tests.factories import World

REGISTER = """mutation($s: ID!, $n: String!) {
  registerSmsNumber(input: {scopeId: $s, number: $n, authToken: "0123456789abcdef0123"}) {
    __typename ... on Error { code message } } }"""


UPDATE = """mutation($s: ID!, $settings: JSON) {
  updateScope(input: {scopeId: $s, settings: $settings}) {
    __typename ... on ScopePayload { scope { channels } }
    ... on Error { code message field } } }"""


async def _channels(world: World, *, token: str | None = None) -> dict[str, list[str]]:
    data = await world.gql("{ scopes { name channels } }", token=token)
    return {s["name"]: s["channels"] for s in data["scopes"]}


async def _set(world: World, scope: str, settings: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = (await world.gql(UPDATE, {"s": world.sid(scope),
                                                       "settings": settings}))["updateScope"]
    return result


async def test_every_channel_unless_the_setting_or_a_sending_number_says_otherwise(
        world: World) -> None:
    every = ["EMAIL", "SMS"]  # WhatsApp only where a tenant turns it on (the setting)
    assert set(map(tuple, (await _channels(world)).values())) == {tuple(every)}

    # A sending number's scope stands for that number: texts only (and what is under it).
    registered = await world.gql(REGISTER, {"s": world.sid("number"), "n": "+14155550100"})
    assert registered["registerSmsNumber"]["__typename"] == "SmsNumberPayload"
    # An explicit setting, inherited down the tree.
    assert (await _set(world, "account", {"channels": ["EMAIL"]}))["scope"]["channels"] == [
        "EMAIL"]
    # A number at the root does not make the whole organisation text-only.
    await world.gql(REGISTER, {"s": world.sid("group"), "n": "+14155550199"})

    token = (await auth.issue_contact_token(world.contacts["ada"], world.root,
                                            TokenPurpose.PREFERENCES, timedelta(days=1))).secret
    for seen in (await _channels(world), await _channels(world, token=token)):
        assert seen["+14155550100"] == ["SMS"]
        assert seen["Research panel"] == seen["Sleep study"] == seen["Diet study"] == ["EMAIL"]
        assert seen[world.root.name] == seen["Newsletters"] == seen["Alice"] == every

    # The setting wins over the number rule, at the same scope; removing it restores it.
    assert (await _set(world, "number", {"channels": ["SMS", "EMAIL"]}))["scope"][
        "channels"] == ["EMAIL", "SMS"]
    assert (await _set(world, "number", {"channels": None}))["scope"]["channels"] == ["SMS"]


@pytest.mark.parametrize("value", [[], ["FAX"], "SMS", ["SMS", "SMS"], ["ALL"], [1]])
async def test_an_invalid_channels_setting_is_refused_and_nothing_changes(
        world: World, value: Any) -> None:
    result = await _set(world, "account", {"channels": value, "unsubscribeLevels": "all"})
    assert result["__typename"] == "OperationError"
    assert result["code"] == "INVALID" and result["field"] == "settings.channels"
    assert "channels" in result["message"]
    settings = (await world.gql("query($id: ID!) { scope(id: $id) { settings } }",
                                {"id": world.sid("account")}))["scope"]["settings"]
    assert settings == {}
    created = (await world.gql("""mutation($p: ID!, $v: JSON) { createScope(input: {
        parentId: $p, kind: "Study", name: "Bad", settings: $v}) {
        __typename ... on Error { code field } } }""",
                               {"p": world.sid("account"), "v": {"channels": value}}))
    assert created["createScope"] == {"__typename": "OperationError", "code": "INVALID",
                                      "field": "settings.channels"}
