"""Shared services every module uses: filtering, export, authorization, storage..."""
