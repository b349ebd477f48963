"""Pieces of ``llmsim sweep``: the grid file, CSV/Parquet writers, the numba number
formatter and the Dask runner. ``simulator.sweep`` ties them together."""
