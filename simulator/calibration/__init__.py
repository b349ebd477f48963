"""Stack profiles fitted from microbenchmarks; this machine's probe; live validation."""
