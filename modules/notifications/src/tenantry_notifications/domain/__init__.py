"""Pure rules of notifications: signatures, the circuit breaker, message texts."""
