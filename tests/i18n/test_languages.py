"""Which language a contact reads, and a tenant's own wording per scope (issue 15).

Through the public surface: the link pages over HTTP, scope settings through GraphQL
``updateScope``, the mail the outbox renders. Language: the contact's locale, then the
browser's Accept-Language, then the scope's ``defaultLanguage``; wording: the scope
setting ``texts``, inherited down the tree, the deepest scope winning.
"""

from __future__ import annotations

from typing import Any

import pytest

from prefcenter.models.enums import Channel, Source
from prefcenter.models.mail import OutboxMail
from prefcenter.services.channels.email import mail
from prefcenter.services.common import utcnow
from prefcenter.services.consent import changes, confirmations
from prefcenter.services.people import contacts
from prefcenter.settings import Settings
from tests.factories import World
from tests.flows.support import get_links, path

UPDATE = """mutation($s: ID!, $settings: JSON) {
  updateScope(input: {scopeId: $s, settings: $settings}) {
    __typename ... on Error { code message field } } }"""

ADMIN = changes.Request(source=Source.ADMIN, evidence={"text": "Signed form"})

# (contact locale, Accept-Language, scope default) -> language of the page, and its title
CHAIN = [
    ("fr-CA", None, None, "fr", "Se désabonner"),
    ("de-AT", "es", "it", "de", "Abmelden"),
    ("ja", "es-MX,es;q=0.9", "it", "es", "Darse de baja"),
    ("ja", "sv, nl;q=0.5", None, "nl", "Afmelden"),
    ("ja", None, "it", "it", "Annulla iscrizione"),
    ("ja", "sv", "pt", "pt", "Cancelar subscrição"),
    ("ja", None, None, "en", "Unsubscribe"),
    ("en", "de", "fr", "en", "Unsubscribe"),
]


async def _set(world: World, scope: str, settings: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = (await world.gql(UPDATE, {"s": world.sid(scope),
                                                       "settings": settings}))["updateScope"]
    return result


async def _locale(world: World, contact: str, locale: str) -> None:
    await contacts.update_contact(world.system, world.cid(contact), locale=locale)


@pytest.mark.parametrize(("locale", "accept", "default", "lang", "title"), CHAIN)
async def test_the_language_chain(world: World, locale: str, accept: str | None,
                                  default: str | None, lang: str, title: str) -> None:
    await _locale(world, "ada", locale)
    if default:
        assert await _set(world, "group", {"defaultLanguage": default}) == {
            "__typename": "ScopePayload"}
    url = path((await get_links(world, scope="study_sleep"))["unsubscribeUrl"])
    headers = {"Accept-Language": accept} if accept else {}
    page = await world.client.get(url, headers=headers)
    assert page.status_code == 200
    assert f'<html lang="{lang}">' in page.text
    assert page.headers["content-language"] == lang
    assert f"<h1>{title}</h1>" in page.text


async def test_a_tenant_overrides_texts_per_scope_inherited_down_the_tree(
        world: World) -> None:
    await _locale(world, "ada", "fr")
    assert await _set(world, "group", {"texts": {
        "fr": {"unsub.title": "Ne plus rien recevoir", "unsub.continue": "Suivant"},
        "de": {"unsub.title": "Nichts mehr"}}}) == {"__typename": "ScopePayload"}
    assert await _set(world, "account", {"texts": {
        "fr": {"unsub.title": "Quitter le panel",
               "unsub.intro": "Plus de {channel} du panel de {tenant}."}}}) == {
            "__typename": "ScopePayload"}

    under_account = await world.client.get(
        path((await get_links(world, scope="study_sleep"))["unsubscribeUrl"]))
    tenant = world.root.name
    assert "<h1>Quitter le panel</h1>" in under_account.text  # deepest wins
    assert f"Plus de e-mails du panel de {tenant}." in under_account.text
    assert "Suivant" in under_account.text  # inherited from the root
    elsewhere = await world.client.get(
        path((await get_links(world, scope="user_alice"))["unsubscribeUrl"]))
    assert "<h1>Ne plus rien recevoir</h1>" in elsewhere.text
    # Other texts stay the catalog's; the German override does not leak into French.
    assert "De quoi souhaitez-vous vous désabonner ?" in elsewhere.text
    # Removing the setting brings the catalog's text back.
    assert await _set(world, "group", {"texts": None}) == {"__typename": "ScopePayload"}
    again = await world.client.get(
        path((await get_links(world, scope="user_alice"))["unsubscribeUrl"]))
    assert "<h1>Se désabonner</h1>" in again.text


@pytest.mark.parametrize(("value", "words"), [
    ({"defaultLanguage": "sv"}, "'defaultLanguage' must be one of en, de, fr"),
    ({"defaultLanguage": 3}, "'defaultLanguage' must be one of"),
    ({"texts": []}, "'texts' must map languages"),
    ({"texts": {"sv": {"unsub.title": "x"}}}, "'texts': 'sv' is not one of"),
    ({"texts": {"fr": {"unsub.nope": "x"}}}, "no message 'unsub.nope'"),
    ({"texts": {"fr": {"unsub.title": ""}}}, "must be a text of 1 to 2000"),
    ({"texts": {"fr": {"unsub.title": "x" * 2001}}}, "must be a text of 1 to 2000"),
    ({"texts": {"fr": {"unsub.title": "Bye {name}"}}}, "takes no placeholders"),
    ({"texts": {"fr": {"unsub.intro": "Adieu {who}"}}}, "may use only the placeholders"),
    ({"texts": {"fr": {"unsub.intro": "Adieu {channel"}}}, "may use only the placeholders"),
])
async def test_invalid_language_settings_are_refused(world: World, value: dict[str, Any],
                                                     words: str) -> None:
    before = (await world.gql("{ scopes { id settings } }"))["scopes"]
    result = await _set(world, "account", value)
    assert result["code"] == "INVALID", result
    assert result["field"] == f"settings.{next(iter(value))}", result
    assert words in result["message"], result
    assert (await world.gql("{ scopes { id settings } }"))["scopes"] == before


async def test_mail_speaks_the_contacts_language_with_the_tenants_words(
        world: World, settings: Settings) -> None:
    await _locale(world, "ada", "nl-BE")
    assert await _set(world, "account", {"texts": {"nl": {
        "mail.footer": "Groeten van het panel van {tenant}."}}}) == {
            "__typename": "ScopePayload"}
    ada = world.cid("ada")
    await changes.opt_out(world.system, ada, world.sid("study_sleep"), Channel.EMAIL, ADMIN)
    await confirmations.request_opt_back_in(world.system, ada, world.sid("study_sleep"),
                                            Channel.EMAIL, ADMIN, settings)
    row = await OutboxMail.get(contact_id=ada)
    prepared = await mail.prepare(row, settings, utcnow())
    message = prepared.message
    assert message["Content-Language"] == "nl"
    assert str(message["Subject"]).startswith("Bevestig alstublieft: weer e-mails van ")
    body = message.get_body(preferencelist=("plain",)).get_content()
    assert f"Groeten van het panel van {world.root.name}." in body
    assert "De link is geldig tot " in body


async def test_a_scope_default_language_reaches_mail(world: World, settings: Settings) -> None:
    await _locale(world, "ada", "ja")
    assert await _set(world, "group", {"defaultLanguage": "pt"}) == {
        "__typename": "ScopePayload"}
    ada = world.cid("ada")
    await changes.opt_out(world.system, ada, world.sid("user_alice"), Channel.EMAIL, ADMIN)
    await confirmations.request_opt_back_in(world.system, ada, world.sid("user_alice"),
                                            Channel.EMAIL, ADMIN, settings)
    prepared = await mail.prepare(await OutboxMail.get(contact_id=ada), settings, utcnow())
    assert prepared.message["Content-Language"] == "pt"
    assert str(prepared.message["Subject"]).startswith("Confirme: voltar a receber e-mails")


# --- the embeddable component's texts (GET /component/texts) -------------------------------


async def _texts(world: World, token: str | None, *, lang: str | None = None,
                 accept: str | None = None) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if accept:
        headers["Accept-Language"] = accept
    response = await world.client.get("/component/texts", headers=headers,
                                      params={"lang": lang} if lang else None)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    assert response.headers["content-language"] == body["language"]
    return body


async def test_component_texts_follow_the_contact_then_the_browser_then_the_scope(
        world: World) -> None:
    token = path((await get_links(world, scope="study_sleep"))["preferencesUrl"]).rsplit("/")[-1]
    await _locale(world, "ada", "fr-CA")
    fr = await _texts(world, token, accept="es")
    assert fr["language"] == "fr"
    assert fr["texts"]["What we may send you"] == "Ce que nous pouvons vous envoyer"
    await _locale(world, "ada", "ja")
    assert (await _texts(world, token, accept="es-MX"))["language"] == "es"
    assert await _set(world, "group", {"defaultLanguage": "nl"}) == {
        "__typename": "ScopePayload"}
    nl = await _texts(world, token)
    assert nl["language"] == "nl" and nl["texts"]["On"] == "Aan"
    # The element's lang attribute wins; English is the code's own words (no texts).
    assert (await _texts(world, token, lang="it"))["texts"]["Off"] == "Disattivo"
    assert await _texts(world, token, lang="en") == {"language": "en", "texts": {}}
    # Without a live link: the browser's language, nothing of the tenant.
    assert (await _texts(world, "not-a-token", accept="de"))["language"] == "de"
    assert (await _texts(world, None, accept="pt-BR"))["language"] == "pt"


async def test_component_texts_carry_the_tenants_wording(world: World) -> None:
    token = path((await get_links(world, scope="study_sleep"))["preferencesUrl"]).rsplit("/")[-1]
    await _locale(world, "ada", "de")
    refused = await _set(world, "group", {"texts": {"de": {
        "What we may send you": "Ihre Newsletter bei {org}"}}})
    assert (refused["code"], refused["message"]) == (
        "INVALID", "'texts.de.What we may send you' takes no placeholders.")
    assert await _set(world, "group", {"texts": {"de": {
        "What we may send you": "Ihre Newsletter", "unsub.title": "Nichts mehr"}}}) == {
            "__typename": "ScopePayload"}
    body = await _texts(world, token)
    assert body["texts"]["What we may send you"] == "Ihre Newsletter"
    assert "unsub.title" not in body["texts"]  # the pages' keys stay with the pages
    # The same link read in another language gets none of the German wording.
    assert (await _texts(world, token, lang="fr"))["texts"]["What we may send you"] == (
        "Ce que nous pouvons vous envoyer")


# --- a contact whose language nobody told us ------------------------------------------------

CREATE_CONTACT = """mutation($i: CreateContactInput!) { createContact(input: $i) {
  __typename ... on ContactPayload { contact { id locale } } } }"""


@pytest.mark.parametrize(("accept", "default", "lang", "title"), [
    ("fr-FR,fr;q=0.9", None, "fr", "Se désabonner"),
    ("sv", "it", "it", "Annulla iscrizione"),
    (None, None, "en", "Unsubscribe"),
])
async def test_a_contact_created_without_a_locale_reads_the_browsers_then_the_scopes(
        world: World, accept: str | None, default: str | None, lang: str, title: str) -> None:
    """Created without a locale, a contact's locale is empty (not ``en``), so the chain goes
    on to the browser's Accept-Language and the scope's default."""
    created = (await world.gql(CREATE_CONTACT, {"i": {"email": "nolocale@example.com"}}))
    contact = created["createContact"]["contact"]
    assert contact["locale"] == ""
    world.contacts["nolocale"] = await contacts.get_contact(world.system, contact["id"])
    if default:
        assert await _set(world, "group", {"defaultLanguage": default}) == {
            "__typename": "ScopePayload"}
    url = path((await get_links(world, contact="nolocale", scope="study_sleep"))
               ["unsubscribeUrl"])
    page = await world.client.get(url, headers={"Accept-Language": accept} if accept else {})
    assert page.status_code == 200
    assert f'<html lang="{lang}">' in page.text
    assert f"<h1>{title}</h1>" in page.text
