"""Validate step of the nightly run."""
