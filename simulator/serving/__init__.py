"""Serving simulation: continuous batching under request load (policy.py defines the
scheduler; loop.py runs it in numba; simulate.py prepares a configuration and measures a run).
Importing this package imports nothing else, so the harness can use policy.py alone."""
