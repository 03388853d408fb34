"""Pure rules of reporting."""
