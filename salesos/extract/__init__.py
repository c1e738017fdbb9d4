"""Extract step of the nightly run."""
