"""Topics (issue #14): defining them, and listing those offered at a scope.

Decisions about a topic go through the consent operations (``decision``, ``audience``,
``claimSend``, ``optOut``, ``optIn``, ``updateContactFrequency``), each with a ``topic``.
"""

from __future__ import annotations

from datetime import datetime

import strawberry

from prefcenter.graphql.base import GInfo, guard, mutation_errors, query_errors, result_union
from prefcenter.graphql.types import ScopeNode, visible_scope
from prefcenter.models import Topic
from prefcenter.models import enums as e
from prefcenter.services.consent import topics as svc

TopicKind = strawberry.enum(e.TopicKind, description="MARKETING (every opt-out and default "
                            "applies) or TRANSACTIONAL (only a suppression, an SMS STOP or an "
                            "opt-out of the topic itself stops it).")


@strawberry.type(name="Topic", description="What a message is about, offered at its scope and "
                 "every scope below it.")
class TopicNode:
    m: strawberry.Private[Topic]
    id: strawberry.ID = strawberry.field(description="Topic id.")
    key: str = strawberry.field(description="What senders name it by: decision(topic: KEY).")
    name: str = strawberry.field(description="Display name, e.g. 'Interview reminders'.")
    description: str = strawberry.field(description="What the contact gets, in a sentence.")
    kind: TopicKind = strawberry.field(description="MARKETING or TRANSACTIONAL.")
    scope_id: strawberry.ID = strawberry.field(
        description="Where it is offered: this scope and every scope below.")
    archived_at: datetime | None = strawberry.field(
        description="When it stopped being offered; null while offered.")

    @classmethod
    def from_model(cls, m: Topic) -> TopicNode:
        return cls(m=m, id=strawberry.ID(str(m.id)), key=m.key, name=m.name,
                   description=m.description, kind=m.kind,
                   scope_id=strawberry.ID(str(m.scope_id)), archived_at=m.archived_at)

    @strawberry.field(description="The scope it is offered at, if visible to you.")
    async def scope(self, info: GInfo) -> ScopeNode | None:
        return await visible_scope(info, str(self.m.scope_id))


@strawberry.input(description="A new topic.")
class CreateTopicInput:
    scope_id: strawberry.ID = strawberry.field(
        description="Offered at this scope and below (the root: the whole tenant).")
    key: str = strawberry.field(description="Unique in the tenant, fixed: lower-case letters, "
                                "digits, '_', '.', '-' (e.g. 'interview-reminders').")
    name: str = strawberry.field(description="Display name.")
    kind: TopicKind = strawberry.field(description="MARKETING or TRANSACTIONAL.")
    description: str = strawberry.field(default="", description="What the contact gets.")


@strawberry.input(description="Change a topic's name, description or kind (key and scope stay).")
class UpdateTopicInput:
    topic_id: strawberry.ID = strawberry.field(description="The topic.")
    name: str | None = strawberry.field(default=None, description="New name.")
    description: str | None = strawberry.field(default=None, description="New description.")
    kind: TopicKind | None = strawberry.field(default=None, description="New kind.")


@strawberry.input(description="Stop offering a topic (decisions about it stay in the ledger).")
class ArchiveTopicInput:
    topic_id: strawberry.ID = strawberry.field(description="The topic.")


@strawberry.type(description="A topic as created or changed.")
class TopicPayload:
    topic: TopicNode = strawberry.field(description="The topic.")


TopicResult = result_union("TopicResult", TopicPayload)


@strawberry.type
class Query:
    @strawberry.field(description="The topics offered at a scope (defined there or above), "
                      "widest first; without a scope, every topic offered anywhere you may "
                      "see (what a preference page shows).")
    @query_errors
    async def topics(self, info: GInfo, scope_id: strawberry.ID | None = None,
                     include_archived: bool = False) -> list[TopicNode]:
        principal = guard(info)
        found = await svc.list_topics(principal, scope_id, include_archived=include_archived)
        return [TopicNode.from_model(t) for t in found]


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Define a topic at a scope of your subtree (DUPLICATE: "
                         "the key is taken; NOT_FOUND: no such scope in your subtree).")
    @mutation_errors
    async def create_topic(self, info: GInfo, input: CreateTopicInput) -> TopicResult:
        principal = guard(info)
        return TopicPayload(topic=TopicNode.from_model(await svc.create_topic(
            principal, input.scope_id, key=input.key, name=input.name, kind=input.kind,
            description=input.description)))

    @strawberry.mutation(description="Rename, describe or re-kind a topic (FORBIDDEN: it is "
                         "defined above your subtree).")
    @mutation_errors
    async def update_topic(self, info: GInfo, input: UpdateTopicInput) -> TopicResult:
        principal = guard(info)
        return TopicPayload(topic=TopicNode.from_model(await svc.update_topic(
            principal, input.topic_id, name=input.name, description=input.description,
            kind=input.kind)))

    @strawberry.mutation(description="Stop offering a topic anywhere (FORBIDDEN: it is "
                         "defined above your subtree).")
    @mutation_errors
    async def archive_topic(self, info: GInfo, input: ArchiveTopicInput) -> TopicResult:
        principal = guard(info)
        return TopicPayload(topic=TopicNode.from_model(
            await svc.archive_topic(principal, input.topic_id)))
