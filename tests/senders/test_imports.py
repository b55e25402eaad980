"""Bulk import: real files on disk, through the service and the CLI and HTTP upload."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prefcenter.errors import DomainError
from prefcenter.models import ConsentEvent, ConsentState, Contact
from prefcenter.models.enums import Action, Channel, ConsentStatus, Source
from prefcenter.services.senders import imports
from prefcenter.services.tenancy.auth import principal_from_api_key
from tests.factories import World
from tests.helpers import assert_ledger_consistent


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


async def test_csv_import_creates_updates_and_is_idempotent(world: World, tmp_path: Path
                                                            ) -> None:
    owner = await principal_from_api_key(world.keys["owner"])
    news = world.sid("client_news")
    path = write(tmp_path, "list.csv",
                 "email,phone,external_id,locale,scope,channel,status,when,evidence\n"
                 f"new1@example.com,+14155550111,crm-1,de,{news},EMAIL,OPTED_IN,"
                 "2024-05-01T10:00:00Z,Signed up at the fair\n"
                 f"new1@example.com,,,,{news},SMS,OPTED_OUT,,\n"
                 f"ada@example.com,,,,{news},EMAIL,OPTED_OUT,,\n"
                 "bob@example.com,,crm-bob,,,,,,\n"
                 "bad-address,,,,,,,,\n"
                 f"new2@example.com,,,,{news},EMAIL,OPTED_IN,,\n")
    summary = await imports.import_file(owner, path)
    assert (summary.rows, summary.created, summary.updated, summary.unchanged,
            summary.refused) == (6, 1, 3, 0, 2)
    reasons = {e.row: e for e in summary.errors}
    assert reasons[5].field == "email"
    assert reasons[6].field == "evidence"
    new1 = await Contact.get(tenant_id=world.tenant_id, email="new1@example.com")
    assert (new1.phone, new1.external_id, new1.locale) == ("+14155550111", "crm-1", "de")
    assert not await Contact.filter(tenant_id=world.tenant_id, email="new2@example.com").exists()
    bob = await Contact.get(id=world.cid("bob"))
    assert bob.external_id == "crm-bob"
    opt_in = await ConsentEvent.get(contact_id=new1.id, channel=Channel.EMAIL)
    assert opt_in.source == Source.IMPORT and opt_in.action == Action.OPTED_IN
    assert opt_in.evidence == {"file": "list.csv", "row": 1, "text": "Signed up at the fair"}
    assert opt_in.occurred_at.isoformat().startswith("2024-05-01T10:00:00")
    ada_state = await ConsentState.get(contact_id=world.cid("ada"), scope_id=news)
    assert ada_state.status == ConsentStatus.OPTED_OUT
    await assert_ledger_consistent(world.tenant_id)

    events_before = await ConsentEvent.filter(tenant_id=world.tenant_id).count()
    again = await imports.import_file(owner, path)
    assert (again.created, again.updated, again.unchanged, again.refused) == (0, 0, 4, 2)
    assert await ConsentEvent.filter(tenant_id=world.tenant_id).count() == events_before


async def test_import_never_lifts_an_opt_out(world: World, tmp_path: Path) -> None:
    owner = await principal_from_api_key(world.keys["owner"])
    group, news = world.sid("group"), world.sid("client_news")
    first = write(tmp_path, "outs.jsonl", json.dumps(
        {"email": "ada@example.com", "scope": group, "channel": "EMAIL",
         "status": "OPTED_OUT"}) + "\n")
    assert (await imports.import_file(owner, first)).updated == 1
    second = write(tmp_path, "ins.jsonl", "\n".join(json.dumps(r) for r in [
        {"email": "ada@example.com", "scope": news, "channel": "EMAIL", "status": "OPTED_IN",
         "evidence": "form"},
        {"email": "ada@example.com", "scope": group, "channel": "ALL", "status": "OPTED_IN",
         "evidence": "form"},
        {"email": "ada@example.com", "scope": group, "channel": "SMS", "status": "OPTED_IN",
         "evidence": "form"},
    ]) + "\n")
    summary = await imports.import_file(owner, second)
    assert summary.refused == 2 and summary.updated == 1, summary.errors
    assert "never lifts an opt-out" in summary.errors[0].reason
    states = {(s.scope_id, s.channel): s.status for s in
              await ConsentState.filter(contact_id=world.cid("ada"))}
    assert states[(world.scopes["group"].id, Channel.EMAIL)] == ConsentStatus.OPTED_OUT
    assert states[(world.scopes["group"].id, Channel.SMS)] == ConsentStatus.OPTED_IN
    await assert_ledger_consistent(world.tenant_id)


async def test_dry_run_writes_nothing_and_duplicates_are_refused(world: World, tmp_path: Path
                                                                 ) -> None:
    owner = await principal_from_api_key(world.keys["owner"])
    row = "dup@example.com,EMAIL,OPTED_OUT\n"
    path = write(tmp_path, "dups.csv", "email,channel,status\n" + row + row)
    before = await ConsentEvent.all().count()
    dry = await imports.import_file(owner, path, dry_run=True)
    assert (dry.created, dry.refused) == (1, 1)
    assert "Repeats row 1" in dry.errors[0].reason
    assert await ConsentEvent.all().count() == before
    assert not await Contact.filter(email="dup@example.com").exists()
    # Across batches too (batch of one row).
    real = await imports.import_file(owner, path, batch_size=1)
    assert (real.created, real.refused) == (1, 1)
    assert "Repeats" in real.errors[0].reason
    # A contact-only row twice in one file is reported as well.
    twice = write(tmp_path, "twice.csv", "email,name\nzoe@example.com,Zoe\nzoe@example.com,Zoe\n")
    result = await imports.import_file(owner, twice)
    assert (result.created, result.refused) == (1, 1)
    assert result.errors[0].row == 2 and "Repeats row 1" in result.errors[0].reason


async def test_a_dry_run_across_batches_predicts_the_real_run(world: World, tmp_path: Path
                                                              ) -> None:
    """Batches of two rows: each batch of the dry run sees what the earlier ones planned
    (created, changed, suppressed, decided), as the real run sees what they wrote."""
    owner = await principal_from_api_key(world.keys["owner"])
    news, events_ = world.sid("client_news"), world.sid("client_events")
    alice = world.sid("user_alice")  # under client_news
    await imports.import_suppression_list(owner, write(tmp_path, "list.csv",
                                                       "email\nlisted@example.com\n"))
    path = write(tmp_path, "batches.csv",
                 "email,external_id,name,scope,channel,status,evidence\n"
                 f"a@example.com,crm-a,,{news},EMAIL,OPTED_IN,Form v1\n"       # 1 created
                 f"b@example.com,,,{news},EMAIL,OPTED_OUT,\n"                  # 2 created
                 f",crm-a,,{events_},EMAIL,OPTED_OUT,\n"                       # 3 A, by id
                 f"a@example.com,,,{news},EMAIL,OPTED_OUT,\n"                  # 4 repeats 1
                 "a@example.com,,Anna,,,,\n"                                   # 5 A renamed
                 f"b@example.com,,,{alice},EMAIL,OPTED_IN,Form v2\n"           # 6 lifts 2
                 "a2@example.com,crm-a,,,,,\n"                                 # 7 A's new email
                 "a@example.com,,Other,,,,\n"                                  # 8 a new contact
                 "listed@example.com,,,,,,\n"                                  # 9 suppressed
                 f"listed@example.com,,,{news},SMS,OPTED_OUT,\n")              # 10 unchanged
    before = (await Contact.all().count(), await ConsentEvent.all().count())
    dry = await imports.import_file(owner, path, dry_run=True, batch_size=2)
    assert (await Contact.all().count(), await ConsentEvent.all().count()) == before
    real = await imports.import_file(owner, path, batch_size=2)

    def outcome(s: imports.ImportSummary) -> tuple[object, ...]:
        return (s.rows, s.created, s.updated, s.unchanged, s.refused, s.suppressed, s.events,
                [(e.row, e.field) for e in s.errors])

    assert outcome(dry) == outcome(real)
    assert (real.created, real.updated, real.refused) == (4, 4, 2)
    assert [e.row for e in dry.errors] == [4, 6]
    assert "Repeats row 1" in dry.errors[0].reason
    assert "never lifts an opt-out" in dry.errors[1].reason
    anna = await Contact.get(external_id="crm-a", tenant_id=world.tenant_id)
    assert (anna.email, anna.name) == ("a2@example.com", "Anna")
    other = await Contact.get(email="a@example.com", tenant_id=world.tenant_id)
    assert other.name == "Other" and other.id != anna.id
    await assert_ledger_consistent(world.tenant_id)


@pytest.mark.parametrize(("name", "content", "message"), [
    ("cols.csv", "email,colour\na@example.com,red\n", "Unknown column"),
    ("noid.csv", "name,locale\nAda,en\n", "needs an email, phone, whatsapp or external_id"),
    ("latin1.csv", "email,name\na@example.com,J\xfcrgen\n".encode("latin-1"), "not UTF-8"),
    ("empty.csv", "", "empty"),
    ("list.txt", "email\na@example.com\n", "format"),
])
async def test_bad_files_change_nothing(world: World, tmp_path: Path, name: str,
                                        content: str | bytes, message: str) -> None:
    owner = await principal_from_api_key(world.keys["owner"])
    path = write(tmp_path, name, content)
    before = await Contact.all().count()
    with pytest.raises(DomainError) as exc:
        await imports.import_file(owner, path)
    assert message in exc.value.message
    assert await Contact.all().count() == before


async def test_size_limit(world: World, tmp_path: Path) -> None:
    owner = await principal_from_api_key(world.keys["owner"])
    path = write(tmp_path, "big.csv", "email\n" + "x@example.com\n" * 100)
    with pytest.raises(DomainError) as exc:
        await imports.import_file(owner, path, max_bytes=100)
    assert exc.value.code == "LIMIT_EXCEEDED"


async def test_subtree_admin_imports_only_inside_its_subtree(world: World, tmp_path: Path
                                                             ) -> None:
    news_admin = await principal_from_api_key(world.keys["news_admin"])
    path = write(tmp_path, "sub.csv", "email,scope,channel,status\n"
                 f"ada@example.com,{world.sid('client_events')},EMAIL,OPTED_OUT\n"
                 f"ada@example.com,{world.sid('user_alice')},EMAIL,OPTED_OUT\n"
                 f"fresh@example.com,,,\n")
    summary = await imports.import_file(news_admin, path)
    assert summary.refused == 1 and summary.errors[0].field == "scope"
    assert summary.updated == 1 and summary.created == 1
    fresh = await Contact.get(email="fresh@example.com")
    assert fresh.home_path == world.scopes["client_news"].path
    partner = await principal_from_api_key(world.keys["partner"])
    with pytest.raises(DomainError) as exc:
        await imports.import_file(partner, path)
    assert exc.value.code == "FORBIDDEN"
