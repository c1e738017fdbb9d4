"""Transform step of the nightly run."""
