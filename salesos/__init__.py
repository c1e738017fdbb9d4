"""salesos: sales operations warehouse."""
