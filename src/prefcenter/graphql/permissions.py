"""Who may call which operation: one rule per root field, and nothing without one.

A test walks the schema and fails when a root field has no rule here.
"""

from __future__ import annotations

from dataclasses import dataclass

from prefcenter.services.tenancy.principals import Capability, Principal


@dataclass(frozen=True)
class Rule:
    """Any of ``capabilities`` is enough; ``contact`` lets a contact token through.

    ``anonymous``: no credential needed, because the operation verifies one given in its
    input (a link token); ``guard_anonymous`` is the guard for those.
    """

    capabilities: frozenset[Capability]
    contact: bool = False
    anonymous: bool = False

    def allows(self, principal: Principal) -> bool:
        if principal.is_contact:
            return self.contact
        return any(principal.can(c) for c in self.capabilities)


def _r(*caps: Capability, contact: bool = False, anonymous: bool = False) -> Rule:
    return Rule(frozenset(caps), contact, anonymous)


C = Capability
RULES: dict[str, Rule] = {
    # Queries
    "Query.me": _r(contact=True),
    "Query.quietHours": _r(C.READ_CONTACTS, contact=True),
    "Query.scope": _r(C.READ_SCOPES, contact=True),
    "Query.scopes": _r(C.READ_SCOPES, contact=True),
    "Query.contact": _r(C.READ_CONTACTS, contact=True),
    "Query.contacts": _r(C.READ_CONTACTS),
    "Query.decision": _r(C.READ_DECISIONS, contact=True),
    "Query.audience": _r(C.READ_DECISIONS),
    "Query.preferences": _r(C.READ_CONTACTS, contact=True),
    "Query.consentEvents": _r(C.READ_EVENTS, contact=True),
    "Query.optOuts": _r(C.READ_CONTACTS),
    "Query.apiKeys": _r(C.MANAGE_KEYS),
    "Query.verifyLedger": _r(C.MANAGE_KEYS),
    "Query.links": _r(C.WRITE),
    "Query.optBackInRequests": _r(C.READ_CONTACTS, contact=True),
    "Query.myDecisions": _r(contact=True),
    "Query.webhookEndpoints": _r(C.WRITE),
    "Query.webhookDeliveries": _r(C.WRITE),
    "Query.smsNumbers": _r(C.READ_SCOPES),
    "Query.smsReviewQueue": _r(C.READ_CONTACTS),
    "Query.unroutedSms": _r(C.MANAGE_KEYS),
    # Issue #21: confirmed opt-in
    "Query.optInMode": _r(C.READ_SCOPES),
    "Query.signupForms": _r(C.WRITE),
    "Query.consentProof": _r(C.READ_EVENTS, contact=True),
    "Query.consentQuestions": _r(C.READ_CONTACTS),
    # Issue #14: topics
    "Query.topics": _r(C.READ_SCOPES, contact=True),
    # Mutations
    "Mutation.createScope": _r(C.WRITE),
    "Mutation.updateScope": _r(C.WRITE),
    "Mutation.createContact": _r(C.WRITE),
    "Mutation.updateContact": _r(C.WRITE, contact=True),
    "Mutation.optOut": _r(C.WRITE, contact=True),
    "Mutation.optIn": _r(C.WRITE, contact=True),
    "Mutation.markNotInterested": _r(contact=True),
    "Mutation.undoNotInterested": _r(contact=True),
    "Mutation.updateContactFrequency": _r(C.WRITE, contact=True),
    "Mutation.setQuietHours": _r(C.WRITE, contact=True),
    "Mutation.setSuppressed": _r(C.WRITE),
    "Mutation.recordSend": _r(C.WRITE),
    "Mutation.claimSend": _r(C.WRITE),
    "Mutation.createApiKey": _r(C.MANAGE_KEYS),
    "Mutation.revokeApiKey": _r(C.MANAGE_KEYS),
    "Mutation.createWebhookEndpoint": _r(C.WRITE),
    "Mutation.updateWebhookEndpoint": _r(C.WRITE),
    "Mutation.deleteWebhookEndpoint": _r(C.WRITE),
    "Mutation.replayWebhook": _r(C.WRITE),
    "Mutation.requestOptBackIn": _r(C.WRITE, contact=True),
    "Mutation.confirmOptBackIn": _r(anonymous=True),  # the link token in the input
    "Mutation.registerSmsNumber": _r(C.WRITE),
    "Mutation.updateSmsNumber": _r(C.WRITE),
    "Mutation.resolveSmsReview": _r(C.WRITE),
    "Mutation.resolveUnroutedSms": _r(C.MANAGE_KEYS),
    # Issue #21: confirmed opt-in
    "Mutation.setOptInMode": _r(C.WRITE),
    "Mutation.createSignupForm": _r(C.WRITE),
    "Mutation.revokeSignupForm": _r(C.WRITE),
    "Mutation.askConsent": _r(C.WRITE),
    "Mutation.resendConfirmation": _r(C.WRITE, contact=True),
    # Issue #14: topics
    "Mutation.createTopic": _r(C.WRITE),
    "Mutation.updateTopic": _r(C.WRITE),
    "Mutation.archiveTopic": _r(C.WRITE),
    # Subscriptions
    "Subscription.consentChanged": _r(C.READ_EVENTS, contact=True),
}
