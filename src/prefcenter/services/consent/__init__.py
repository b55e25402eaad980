"""Consent: changing it, resolving it, the ledger that proves it, and explaining it."""
