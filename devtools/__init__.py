"""Developer tooling: local Temporal dev server and helpers; not imported by workers."""
