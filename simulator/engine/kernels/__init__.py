"""Numba kernels: roofline per operator, pass features, and the scenario composition."""
