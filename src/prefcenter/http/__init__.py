"""Non-GraphQL routes: health, contact link pages, one-click, SMS webhook, preference page."""
