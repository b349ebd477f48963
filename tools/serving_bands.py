"""Rewrite validation/measurements/bands-serving.json, the error bands `llmsim serving` reads,
from the committed serving runs and published serving benchmarks (`make readme` runs it)."""
from __future__ import annotations

if __name__ == "__main__":
    from simulator.accuracy.serving_bands import write

    print(f"wrote {write()}")
