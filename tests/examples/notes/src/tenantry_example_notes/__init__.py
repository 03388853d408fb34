"""An example module from outside the repository: a tenant's notes."""
