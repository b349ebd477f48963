"""Developer scripts that regenerate the README (outside the package)."""
