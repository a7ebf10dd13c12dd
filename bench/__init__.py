"""Benchmarks of the jobs system against a bare temporalio baseline (``python -m bench.run``)."""
