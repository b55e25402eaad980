"""Email: the outbox and its rendering, and providers' bounce and complaint feeds."""
