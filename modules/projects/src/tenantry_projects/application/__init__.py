"""Use cases of projects and tasks."""
