"""Deterministic job workflows, one module per job type; ``workflows.registry`` lists them.

Kept empty on purpose: the sandbox imports a workflow's package for every workflow run, so
anything imported here would be re-executed per job.
"""
