"""Tenancy: scope trees and inherited settings, who is asking, credentials and access."""
