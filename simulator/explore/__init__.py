"""Design-space exploration: sweeps over grid files (grid, writers, CSV formatter, Dask
runner), planning against targets, what-if copies of specs, cost, and the Pareto front."""
