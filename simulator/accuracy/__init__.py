"""Predictions against measured and published runs, and their error statistics."""
