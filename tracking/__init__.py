"""Job tracking: the Redis store of job records, statistics and lifecycle events
(``tracking.store``), the worker interceptors that feed it (``tracking.interceptor``),
progress reporting (``tracking.progress``) and the reconciler that keeps it in line with
Temporal (``tracking.reconcile``).

Producers only read the store; everything that writes lives on the worker side.
"""
