"""Consent change stream: subscriptions, fan-out across processes, webhooks."""
