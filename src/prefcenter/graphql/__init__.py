"""The GraphQL transport: thin resolvers that map input, call a service, map output."""
