"""Publish step: atomic swap, versions, rollback."""
