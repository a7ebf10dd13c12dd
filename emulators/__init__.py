"""Loopback emulators of external systems, for tests and benchmarks."""
