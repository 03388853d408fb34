"""Projects and tasks, pure: no database, HTTP or kernel."""
