"""SQL repositories of projects and tasks."""
