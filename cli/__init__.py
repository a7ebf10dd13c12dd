"""The operator CLI (``jobs``)."""
