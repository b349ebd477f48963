"""Roofline, memory and energy engine: operator tables + bound device parameters -> times."""
