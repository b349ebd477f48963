"""Validation of the simulator against real runs: harness/ measures them (a package installed
with the simulator); measurements/ and published/ hold the data."""
