"""Rewrite validation/measurements/bands.json, the error bands Prediction.confidence reads,
from the committed measurements and published runs (`make readme` runs it; 30-60 s)."""
from __future__ import annotations

if __name__ == "__main__":
    from simulator.accuracy.bands import write

    print(f"wrote {write()}")
