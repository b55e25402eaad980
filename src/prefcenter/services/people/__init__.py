"""People: contacts, their lookup and validation, and their GDPR rights."""
