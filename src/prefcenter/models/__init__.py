"""Tortoise models only. Every model module is listed in ``MODEL_MODULES``."""

from prefcenter.models.consent import (
    ConsentEvent,
    ConsentState,
    FrequencyPreference,
    NotInterested,
    SendRecord,
    Topic,
    TopicConsentState,
    TopicFrequency,
)
from prefcenter.models.contacts import Contact, ContactToken
from prefcenter.models.tenancy import ApiKey, Scope, Tenant

MODEL_MODULES = [
    "prefcenter.models.tenancy",
    "prefcenter.models.contacts",
    "prefcenter.models.consent",
    "prefcenter.models.mail",
    "prefcenter.models.sms",
    "prefcenter.models.webhooks",
    "prefcenter.models.optin",
    "prefcenter.models.senders",  # issue 13: suppression list, feedback, sender config
]

__all__ = [
    "MODEL_MODULES",
    "ApiKey",
    "ConsentEvent",
    "ConsentState",
    "Contact",
    "ContactToken",
    "FrequencyPreference",
    "NotInterested",
    "Scope",
    "SendRecord",
    "Tenant",
    "Topic",
    "TopicConsentState",
    "TopicFrequency",
]
