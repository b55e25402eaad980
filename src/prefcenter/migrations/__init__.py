"""Versioned schema migrations (Tortoise). Create new ones with ``prefcenter makemigrations``."""
