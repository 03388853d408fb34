"""HTTP: app factory, middleware, RFC 9457 problems, route dependencies."""
