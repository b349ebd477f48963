"""Finding a device's microbenchmark files under validation/measurements/ and naming them as
a profile's ``fitted_from`` does."""
from __future__ import annotations

from pathlib import Path

from simulator.errors import SpecError
from simulator.specs.base import Dtype
from simulator.specs.measurement import MicroFile, load_micro, measurement_root


def newest_micros(folder: Path) -> dict[Dtype, Path]:
    """The most recent microbenchmark file of each dtype under a device's folder (a GPU's
    files are all bf16; a CPU session writes one file per dtype), bf16's first."""
    from simulator.calibration.beyond import is_supplement

    files = sorted(Path(folder).rglob("micro-*.json"))
    if not files:
        raise SpecError(str(folder), "", "no micro-*.json microbenchmark file (run validation/harness first)")
    newest = {}
    for f in files:
        micro = load_micro(f)
        if is_supplement(micro):          # micro_beyond's files refine a base file (supplements())
            continue
        dtype, date = Dtype(micro.dtype), micro.environment.date_utc
        if dtype not in newest or date > newest[dtype][0]:
            newest[dtype] = (date, f)
    return {d: f for d, (_, f) in sorted(newest.items(), key=lambda kv: kv[0] != Dtype.bf16)}


def newest_micro(folder: Path) -> Path:
    """The most recent microbenchmark file under a device's folder (of bf16 where there are several)."""
    return next(iter(newest_micros(folder).values()))


def relative_source(path: Path) -> str:
    """A file's path as a profile's fitted_from names it: relative to the data root when under it."""
    from simulator.specs import registry

    root = registry.data_root()
    return str(path.relative_to(root)) if path.is_absolute() and root in path.parents else str(path)


def device_sessions(hardware_name: str) -> dict[str, MicroFile]:
    """Every micro file of a device, by its path relative to the data root."""
    return {relative_source(f): load_micro(f) for f in sorted((measurement_root() / hardware_name).rglob("micro-*.json"))}


def supplements(hardware_name: str) -> dict[str, MicroFile]:
    """A device's micro_beyond files (calibration/beyond.py), by relative path, oldest first."""
    from simulator.calibration.beyond import is_supplement

    return {k: m for k, m in device_sessions(hardware_name).items() if is_supplement(m)}
