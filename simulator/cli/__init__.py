"""The llmsim command: one module per command family; the only code that prints or sets exit codes."""
