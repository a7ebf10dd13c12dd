"""Shared definitions: configuration, queue catalog, job types and models, errors, logging."""
