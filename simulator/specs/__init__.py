"""Pydantic models of the spec files (hardware, model, stack, workload) and their registry."""
