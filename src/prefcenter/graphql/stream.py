"""The consent change stream: the ``consentChanged`` subscription and webhook endpoints."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator
from datetime import datetime

import strawberry

from prefcenter.errors import DomainError
from prefcenter.graphql.base import (
    Connection,
    GInfo,
    GraphQLDomainError,
    guard,
    mutation_errors,
    query_errors,
    result_union,
    to_connection,
)
from prefcenter.graphql.types import Action, Channel, ConsentEventNode, ScopeNode
from prefcenter.models.webhooks import DeliveryStatus as DeliveryStatusEnum
from prefcenter.models.webhooks import WebhookAttempt, WebhookEndpoint
from prefcenter.observability import metrics
from prefcenter.services import webhooks
from prefcenter.services.consent import changefeed, ledger
from prefcenter.services.tenancy.auth import principal_from_bearer
from prefcenter.stream import fanout

log = logging.getLogger(__name__)

DeliveryStatus = strawberry.enum(DeliveryStatusEnum, name="WebhookDeliveryStatus",
                                 description="PENDING: waiting for its first attempt or a "
                                 "retry; SUCCEEDED: the receiver answered 2xx.")


@strawberry.type(name="WebhookEndpoint", description="A URL that receives the public ledger "
                 "events of a subtree as signed JSON (Standard Webhooks).")
class WebhookEndpointNode:
    m: strawberry.Private[WebhookEndpoint]
    id: strawberry.ID = strawberry.field(description="Endpoint id.")
    url: str = strawberry.field(description="Where deliveries are POSTed.")
    scope_id: strawberry.ID = strawberry.field(
        description="Events at this scope and below it are delivered.")
    description: str = strawberry.field(description="What the endpoint is for.")
    event_types: list[Action] = strawberry.field(
        description="Actions delivered; empty means every public action. NOT_INTERESTED and "
        "INTEREST_RESTORED are private to the contact and never delivered.")
    enabled: bool = strawberry.field(description="Whether deliveries are being sent.")
    disabled_reason: str | None = strawberry.field(
        description="Why it was disabled: by hand, after failing continuously for the "
        "configured time (days by default), or because the receiver answered 410 Gone.")
    disabled_at: datetime | None = strawberry.field(description="When it was disabled.")
    consecutive_failures: int = strawberry.field(
        description="Failed attempts in a row (reset by a success). Shown only: an endpoint "
        "is never disabled by a count.")
    failing_since: datetime | None = strawberry.field(
        description="Since when every attempt has failed; null while it is healthy. While "
        "failing it is probed with one delivery at a time on an exponential schedule.")
    next_attempt_at: datetime | None = strawberry.field(
        description="While failing: when the next probe goes (a 429/503 Retry-After is "
        "honoured). Null while healthy.")
    alert_email: str | None = strawberry.field(
        description="Who is mailed when it starts failing, before it is disabled, when it "
        "is disabled and when it recovers; null: nobody.")
    created_at: datetime = strawberry.field(description="When it was registered.")

    @classmethod
    def from_model(cls, m: WebhookEndpoint) -> WebhookEndpointNode:
        return cls(m=m, id=strawberry.ID(str(m.id)), url=m.url,
                   scope_id=strawberry.ID(str(m.scope_id)), description=m.description,
                   event_types=[Action(t) for t in m.event_types], enabled=m.enabled,
                   disabled_reason=m.disabled_reason, disabled_at=m.disabled_at,
                   consecutive_failures=m.consecutive_failures, failing_since=m.failing_since,
                   next_attempt_at=m.next_attempt_at if m.failing_since else None,
                   alert_email=m.alert_email, created_at=m.created_at)

    @strawberry.field(description="Deliveries waiting for a 2xx (sent oldest first once it "
                      "answers, at a bounded rate).")
    async def backlog_size(self) -> int:
        return await webhooks.backlog_size(str(self.m.id))

    @strawberry.field(description="The scope whose subtree is delivered.")
    async def scope(self, info: GInfo) -> ScopeNode | None:
        scope = await info.context.loaders.scopes.load(str(self.m.scope_id))
        return ScopeNode.from_model(scope) if scope is not None else None


@strawberry.type(name="WebhookAttempt", description="One HTTP attempt of a delivery.")
class WebhookAttemptNode:
    attempted_at: datetime = strawberry.field(description="When it was made.")
    succeeded: bool = strawberry.field(description="The receiver answered 2xx.")
    status_code: int | None = strawberry.field(
        description="The HTTP status answered; null when no answer came.")
    error: str | None = strawberry.field(
        description="Why it failed: status and start of the body, timeout, connection error.")
    duration_ms: int = strawberry.field(description="How long it took, in milliseconds.")

    @classmethod
    def from_model(cls, m: WebhookAttempt) -> WebhookAttemptNode:
        return cls(attempted_at=m.attempted_at, succeeded=m.succeeded,
                   status_code=m.status_code, error=m.error, duration_ms=m.duration_ms)


@strawberry.type(name="WebhookDelivery", description="One event on its way to one endpoint; "
                 "retried until the receiver answers 2xx.")
class WebhookDeliveryNode:
    id: str = strawberry.field(description="The webhook-id header: the same on every attempt.")
    event_id: strawberry.ID = strawberry.field(description="The ledger event delivered.")
    event_cursor: str = strawberry.field(
        description="The event's cursor (replayWebhook `after`, consentChanged `after`).")
    event_type: str = strawberry.field(description="The payload type, e.g. consent.opted_out.")
    status: DeliveryStatus = strawberry.field(description="Where it stands.")
    attempt_count: int = strawberry.field(description="Attempts made so far.")
    next_attempt_at: datetime | None = strawberry.field(
        description="When the next attempt is due (pending only).")
    last_attempt_at: datetime | None = strawberry.field(description="The latest attempt.")
    last_status_code: int | None = strawberry.field(description="Status of the latest attempt.")
    last_error: str | None = strawberry.field(description="Error of the latest attempt.")
    delivered_at: datetime | None = strawberry.field(description="When a 2xx came back.")
    created_at: datetime = strawberry.field(description="When it was enqueued.")
    attempts: list[WebhookAttemptNode] = strawberry.field(
        description="The latest attempts, newest first (up to 10).")

    @classmethod
    def from_view(cls, v: webhooks.DeliveryView) -> WebhookDeliveryNode:
        d = v.delivery
        pending = d.status == DeliveryStatusEnum.PENDING
        event_type = f"consent.{v.event.action.value.lower()}" if v.event is not None else ""
        return cls(id=webhooks.webhook_id(d), event_id=strawberry.ID(str(d.event_id)),
                   event_cursor=ledger.event_cursor(d.event_id),
                   event_type=event_type, status=d.status, attempt_count=d.attempts,
                   next_attempt_at=d.next_attempt_at if pending else None,
                   last_attempt_at=d.last_attempt_at, last_status_code=d.last_status_code,
                   last_error=d.last_error, delivered_at=d.delivered_at,
                   created_at=d.created_at,
                   attempts=[WebhookAttemptNode.from_model(a) for a in v.attempts])


@strawberry.input(description="A new webhook endpoint.")
class CreateWebhookEndpointInput:
    url: str = strawberry.field(description="http(s) URL without credentials.")
    scope_id: strawberry.ID = strawberry.field(
        description="Deliver events at this scope and below (inside your own subtree).")
    event_types: list[Action] | None = strawberry.field(
        default=None, description="Only these actions; omit for every public action.")
    description: str | None = strawberry.field(default=None, description="What it is for.")
    alert_email: str | None = strawberry.field(
        default=None, description="Mail notices about this endpoint's trouble here.")


@strawberry.input(description="Change a webhook endpoint; omitted fields stay as they are.")
class UpdateWebhookEndpointInput:
    id: strawberry.ID = strawberry.field(description="The endpoint.")
    url: str | None = strawberry.field(default=None, description="A new URL.")
    enabled: bool | None = strawberry.field(
        default=None, description="false stops deliveries; true resumes them, sending "
        "what waited meanwhile (oldest first), and clears the failure state.")
    description: str | None = strawberry.field(default=None, description="A new description.")
    event_types: list[Action] | None = strawberry.field(
        default=None, description="New action filter; [] for every public action.")
    alert_email: str | None = strawberry.field(
        default=None, description="A new address for notices; \"\" for none.")


@strawberry.type(description="A webhook endpoint, with its signing secret when just created.")
class WebhookEndpointPayload:
    endpoint: WebhookEndpointNode = strawberry.field(description="The endpoint.")
    secret: str | None = strawberry.field(
        description="The signing secret (whsec_...): verify deliveries with any Standard "
        "Webhooks library. Shown once, at creation; null afterwards.")


@strawberry.type(description="A deleted webhook endpoint.")
class DeleteWebhookEndpointPayload:
    deleted_id: strawberry.ID = strawberry.field(description="The endpoint that was deleted.")


@strawberry.type(description="Events re-enqueued for an endpoint.")
class ReplayWebhookPayload:
    endpoint: WebhookEndpointNode = strawberry.field(description="The endpoint.")
    enqueued: int = strawberry.field(description="Events enqueued again.")
    last_cursor: str | None = strawberry.field(
        description="Cursor of the last event enqueued; pass as `after` to continue.")
    has_more: bool = strawberry.field(
        description="More events follow than one replay enqueues; call again from lastCursor.")


WebhookEndpointResult = result_union("WebhookEndpointResult", WebhookEndpointPayload)
DeleteWebhookEndpointResult = result_union("DeleteWebhookEndpointResult",
                                           DeleteWebhookEndpointPayload)
ReplayWebhookResult = result_union("ReplayWebhookResult", ReplayWebhookPayload)


@strawberry.type
class Query:
    @strawberry.field(description="Webhook endpoints in your subtree (without secrets).")
    @query_errors
    async def webhook_endpoints(self, info: GInfo) -> list[WebhookEndpointNode]:
        principal = guard(info)
        return [WebhookEndpointNode.from_model(e)
                for e in await webhooks.list_endpoints(principal)]

    @strawberry.field(description="An endpoint's deliveries, newest event first, with their "
                      "latest attempts (status code, error, duration).")
    @query_errors
    async def webhook_deliveries(self, info: GInfo, endpoint_id: strawberry.ID,
                                 first: int | None = None, after: str | None = None,
                                 ) -> Connection[WebhookDeliveryNode]:
        principal = guard(info)
        page = await webhooks.list_deliveries(principal, endpoint_id, first=first, after=after,
                                              max_page=info.context.settings.max_page_size)
        return to_connection(page, WebhookDeliveryNode.from_view)


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Register a webhook endpoint for a subtree; the signing "
                         "secret is in the payload this once.")
    @mutation_errors
    async def create_webhook_endpoint(self, info: GInfo, input: CreateWebhookEndpointInput,
                                      ) -> WebhookEndpointResult:
        principal = guard(info)
        created = await webhooks.create_endpoint(
            principal, info.context.settings, url=input.url, scope_id=input.scope_id,
            event_types=input.event_types, description=input.description,
            alert_email=input.alert_email)
        return WebhookEndpointPayload(endpoint=WebhookEndpointNode.from_model(created.endpoint),
                                      secret=created.secret)

    @strawberry.mutation(description="Change an endpoint's URL, description, actions or "
                         "alert address; enable or disable it.")
    @mutation_errors
    async def update_webhook_endpoint(self, info: GInfo, input: UpdateWebhookEndpointInput,
                                      ) -> WebhookEndpointResult:
        principal = guard(info)
        endpoint = await webhooks.update_endpoint(
            principal, info.context.settings, input.id, url=input.url, enabled=input.enabled,
            description=input.description, event_types=input.event_types,
            alert_email=input.alert_email)
        return WebhookEndpointPayload(endpoint=WebhookEndpointNode.from_model(endpoint),
                                      secret=None)

    @strawberry.mutation(description="Delete an endpoint with its pending deliveries and log.")
    @mutation_errors
    async def delete_webhook_endpoint(self, info: GInfo, id: strawberry.ID,
                                      ) -> DeleteWebhookEndpointResult:
        principal = guard(info)
        endpoint = await webhooks.delete_endpoint(principal, id)
        return DeleteWebhookEndpointPayload(deleted_id=strawberry.ID(str(endpoint.id)))

    @strawberry.mutation(description="Send again every matching event after a cursor (all of "
                         "them without one). Events already delivered keep their webhook-id.")
    @mutation_errors
    async def replay_webhook(self, info: GInfo, endpoint_id: strawberry.ID,
                             after: str | None = None) -> ReplayWebhookResult:
        principal = guard(info)
        result = await webhooks.replay(principal, info.context.settings, endpoint_id, after)
        return ReplayWebhookPayload(endpoint=WebhookEndpointNode.from_model(result.endpoint),
                                    enqueued=result.enqueued, last_cursor=result.last_cursor,
                                    has_more=result.has_more)


async def _close(info: GInfo, code: int, reason: str) -> None:
    """End the WebSocket with a close code the client can act on."""
    socket = info.context.websocket
    if socket is None:
        return
    try:
        await socket.close(code=code, reason=reason)
    except Exception:  # the peer is already gone
        log.debug("closing the subscription socket failed", exc_info=True)
        return
    # The transport handler notices the close and cancels this operation; returning
    # instead would make it send a `complete` on a closed socket.
    await asyncio.sleep(30)


@strawberry.type
class Subscription:
    @strawberry.subscription(description="Every ledger event in your subtree, live, in ledger "
                             "order (graphql-transport-ws). With `after` (the cursor of the "
                             "last event you saw) the events you missed come first, with no "
                             "gap and no duplicate. `scopeId` narrows to a subtree; `channel` "
                             "to a channel (events covering ALL channels included). Contact "
                             "tokens receive their own events only. A subscriber too slow for "
                             "the rate of changes is disconnected with close code 4013; it "
                             "reconnects with `after` and loses nothing.")
    async def consent_changed(self, info: GInfo, scope_id: strawberry.ID | None = None,
                              channel: Channel | None = None, after: str | None = None,
                              ) -> AsyncGenerator[ConsentEventNode, None]:
        principal = guard(info)
        context = info.context
        try:
            selection = await changefeed.open_filter(principal, scope_id=scope_id, channel=channel)
            after_id = changefeed.parse_after(after)
        except DomainError as exc:
            raise GraphQLDomainError(exc) from None
        connection = context.connection
        assert connection is not None
        plugin = connection.app.plugins.get(fanout.StreamChannels)
        credential = context.bearer()

        async def reauthenticate() -> None:
            await principal_from_bearer(credential or "", fresh=True)

        try:
            with metrics.subscriber_connected():  # issue 16: the subscribers gauge
                async for event in fanout.feed(plugin, selection, after_id, context.settings,
                                               reauthenticate=reauthenticate):
                    yield ConsentEventNode.from_model(event)
        except fanout.SlowSubscriber as exc:
            await _close(info, fanout.SLOW_SUBSCRIBER_CLOSE_CODE, exc.reason)
        except DomainError as exc:
            await _close(info, fanout.CREDENTIAL_REVOKED_CLOSE_CODE,
                         f"Credential no longer valid: {exc.message}"[:120])
