"""Platform machinery: configuration, modules, database, tenancy, auth, HTTP. No business logic."""
