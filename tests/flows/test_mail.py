"""The mail outbox and its worker against a real SMTP server: outages, retries, two
workers at once, a crashed worker's claim, permanent refusals, and the offline demo."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from datetime import timedelta

import httpx
import pytest

from prefcenter.app import create_app
from prefcenter.models import ContactToken
from prefcenter.models.enums import Channel, Source
from prefcenter.models.mail import MailStatus, OutboxMail
from prefcenter.services.channels.email import mail
from prefcenter.services.common import utcnow
from prefcenter.services.consent import changes, confirmations
from prefcenter.services.people import contacts
from prefcenter.services.tenancy import scopes
from prefcenter.settings import Settings
from tests.conftest import running
from tests.factories import World
from tests.flows.conftest import SmtpServer
from tests.flows.support import get_links, link_in, path

ONE_CLICK = {"List-Unsubscribe": "One-Click"}
ADMIN = changes.Request(source=Source.ADMIN, evidence={"note": "test"})


async def _ask(world: World, settings: Settings, contact_id: str,
               scope: str = "study_sleep") -> None:
    """An admin opts the contact out and asks it to opt back in: one mail queued."""
    await changes.opt_out(world.system, contact_id, world.sid(scope), Channel.EMAIL, ADMIN)
    await confirmations.request_opt_back_in(world.system, contact_id, world.sid(scope),
                                            Channel.EMAIL, ADMIN, settings)


async def test_every_mail_arrives_once_after_an_smtp_outage(
    world: World, client: httpx.AsyncClient, smtp: SmtpServer, settings: Settings,
) -> None:
    smtp.stop()
    await scopes.update_scope(world.system, world.sid("group"),
                              settings={"optOutConfirmationEmail": True})
    for contact, scope in (("ada", "study_sleep"), ("bob", "study_diet")):
        links = await get_links(world, contact, scope)
        assert (await client.post(path(links["unsubscribeUrl"]), data=ONE_CLICK)
                ).status_code == 200
    await confirmations.request_opt_back_in(world.system, world.cid("ada"),
                                            world.sid("study_sleep"), Channel.EMAIL, ADMIN,
                                            settings)
    assert await OutboxMail.all().count() == 3

    now = utcnow()
    for _ in range(3):
        report = await mail.deliver_due(settings, now=now)
        assert report.unreachable and (report.sent, report.retried) == (0, 1)
    rows = await OutboxMail.all()
    assert {(r.status, r.attempts) for r in rows} == {(MailStatus.PENDING, 1)}
    assert all(r.next_attempt_at > now and "Connect" in (r.last_error or "") for r in rows)
    # Nothing is due again before the backoff has passed, and nothing was lost.
    assert (await mail.deliver_due(settings, now=now)).handled == 0
    assert smtp.messages == []

    smtp.start()
    report = await mail.deliver_due(settings, now=now + timedelta(hours=2))
    assert (report.sent, report.retried, report.unreachable) == (3, 0, False)
    assert (await mail.deliver_due(settings, now=now + timedelta(days=2))).handled == 0
    messages = smtp.messages
    assert len(messages) == 3
    assert sorted(m["Message-ID"] for m in messages) == sorted(
        f"<{r.id}@acme.test>" for r in rows)
    assert {r.status for r in await OutboxMail.all()} == {MailStatus.SENT}
    # The links that went out work; those of the failed attempts were revoked.
    for message in messages:
        assert (await client.get(path(link_in(message)))).status_code == 200
    assert await ContactToken.filter(revoked_at__isnull=False).count() == 6


async def test_two_workers_never_send_one_row_twice(
    world: World, smtp: SmtpServer, settings: Settings,
) -> None:
    for i in range(6):
        contact = await contacts.create_contact(world.system, email=f"c{i}@example.com")
        await _ask(world, settings, str(contact.id))
    reports = await asyncio.gather(*(mail.deliver_due(settings) for _ in range(3)))
    assert sum(r.sent for r in reports) == 6
    ids = [m["Message-ID"] for m in smtp.messages]
    assert len(ids) == len(set(ids)) == 6
    assert {r.attempts for r in await OutboxMail.all()} == {1}


async def test_a_crashed_workers_claim_is_taken_over_after_its_lease(
    world: World, smtp: SmtpServer, settings: Settings,
) -> None:
    await _ask(world, settings, world.cid("ada"))
    # A worker claimed the row and died before marking it sent.
    await OutboxMail.all().update(status=MailStatus.SENDING, claim_token="dead", attempts=1,
                                  claimed_until=utcnow() + mail.LEASE)
    assert (await mail.deliver_due(settings)).handled == 0  # its claim is still live
    report = await mail.deliver_due(settings, now=utcnow() + mail.LEASE + timedelta(seconds=1))
    assert report.sent == 1
    assert len(smtp.messages) == 1
    row = await OutboxMail.get()
    assert (row.status, row.attempts, row.claim_token) == (MailStatus.SENT, 2, None)


async def test_temporary_refusal_is_retried_permanent_one_is_not(
    world: World, smtp: SmtpServer, settings: Settings,
) -> None:
    grey = await contacts.create_contact(world.system, email="grey@example.com")
    gone = await contacts.create_contact(world.system, email="reject@example.com")
    await _ask(world, settings, str(grey.id))
    await _ask(world, settings, str(gone.id))
    now = utcnow()
    report = await mail.deliver_due(settings, now=now)
    assert (report.sent, report.retried, report.failed) == (0, 1, 1)
    failed = await OutboxMail.get(contact_id=gone.id)
    assert failed.status == MailStatus.FAILED and "550" in (failed.last_error or "")
    report = await mail.deliver_due(settings, now=now + timedelta(hours=1))
    assert (report.sent, report.failed) == (1, 0)
    assert [str(m["To"]) for m in smtp.messages] == ["grey@example.com"]
    assert (await OutboxMail.get(contact_id=gone.id)).status == MailStatus.FAILED


async def test_without_smtp_mail_is_logged_and_held(
    world: World, client: httpx.AsyncClient, smtp: SmtpServer, settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    offline = dataclasses.replace(settings, smtp_host="")
    await _ask(world, offline, world.cid("ada"))
    with caplog.at_level(logging.INFO, logger="prefcenter.mail"):
        report = await mail.deliver_due(offline)
    assert report.held == 1 and smtp.messages == []
    assert (await OutboxMail.get()).status == MailStatus.HELD
    found = re.search(r"http://testserver/c/[A-Za-z0-9_\-]+", caplog.text)
    assert found, caplog.text
    # The demo works offline: the logged link is the real one.
    assert (await client.get(path(found.group(0)))).status_code == 200
    assert (await mail.deliver_due(offline)).handled == 0


async def test_the_worker_sends_in_the_background(
    world: World, smtp: SmtpServer, settings: Settings,
) -> None:
    live = dataclasses.replace(settings, run_workers=True, outbox_poll_seconds=0.05)
    async with running(create_app(live, init_database=False)):
        await _ask(world, live, world.cid("ada"))
        for _ in range(200):
            if smtp.to("ada@example.com"):
                break
            await asyncio.sleep(0.05)
    assert len(smtp.to("ada@example.com")) == 1
    assert (await OutboxMail.get()).status == MailStatus.SENT
