"""Measurement harness of the `pytorch-ref` stack: real runs on GPUs (measure.py) and on this
CPU (cpu.py). Installed with the simulator (``python -m validation.harness.measure`` works
from anywhere after ``pip install '.[measure]'``); torch is imported only where it is needed.

README.md beside this file defines the reference stack and the files written; the files'
schema is simulator/specs/measurement.py, which the harness validates against when writing.
"""

HARNESS_VERSION = "harness-0.1.0"
