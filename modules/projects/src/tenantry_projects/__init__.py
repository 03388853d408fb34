"""Projects and their tasks: the project-management case study's domain (the worked example
of docs/modules.md, "Writing a module, step by step")."""
