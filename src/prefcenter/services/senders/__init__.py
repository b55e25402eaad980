"""Senders' toolkit: bulk import and export, and the suppression list."""
