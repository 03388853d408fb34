"""Identity use cases; they receive ports, never connections."""
