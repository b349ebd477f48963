"""Human-readable tables, CSV/JSON writers and plots of predictions."""
