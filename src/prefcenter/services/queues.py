"""How much work waits in the outboxes: read by ``/metrics`` at scrape time."""

from __future__ import annotations

from dataclasses import dataclass

from prefcenter.models.mail import MailStatus, OutboxMail
from prefcenter.models.webhooks import DeliveryStatus, WebhookDelivery, WebhookEndpoint


@dataclass(frozen=True)
class QueueDepths:
    mail_pending: int
    mail_sending: int
    mail_failed: int
    webhooks_pending: int
    #: Pending deliveries that have failed at least once (waiting for a retry).
    webhooks_retrying: int
    webhook_endpoints_disabled: int


async def depths() -> QueueDepths:
    """Six counts over indexed columns; the delivered/sent history is never scanned."""
    return QueueDepths(
        mail_pending=await OutboxMail.filter(status=MailStatus.PENDING).count(),
        mail_sending=await OutboxMail.filter(status=MailStatus.SENDING).count(),
        mail_failed=await OutboxMail.filter(status=MailStatus.FAILED).count(),
        webhooks_pending=await WebhookDelivery.filter(status=DeliveryStatus.PENDING).count(),
        webhooks_retrying=await WebhookDelivery.filter(status=DeliveryStatus.PENDING,
                                                       attempts__gt=0).count(),
        webhook_endpoints_disabled=await WebhookEndpoint.filter(enabled=False).count(),
    )
