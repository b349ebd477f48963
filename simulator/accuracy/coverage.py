"""What a fitted profile's microbenchmarks reach: the ranges its numbers were fitted on.

Read once per ``fitted_from`` (its micro-*.json files; "; " separates several) and kept:
the GEMM rows M, decode attention's batch and cached positions, prefill attention's
sequence length, the compute dtypes (each file's, and fp8 where it holds fp8_matmul rows)
and whether any grouped expert GEMM (grouped_mm) was measured.
"""
from __future__ import annotations

import dataclasses
import functools

from simulator.errors import SpecError


@dataclasses.dataclass(frozen=True)
class FitRange:
    gemm_rows_max: int          # largest M of a measured GEMM (rows = tokens)
    decode_batch_max: int       # sequences of a decode attention row
    decode_context_max: int     # cached positions of a decode attention row
    prefill_length_max: int     # tokens of a prefill attention row
    dtypes: frozenset[str]      # compute dtypes its GEMMs were measured in
    moe: bool                   # grouped expert GEMMs measured


def _extra_rows(micro, section: str) -> list[dict]:
    rows = (micro.model_extra or {}).get(section) or []
    return [r for r in rows if isinstance(r, dict)]


def _merge(a: FitRange, b: FitRange) -> FitRange:
    return FitRange(max(a.gemm_rows_max, b.gemm_rows_max), max(a.decode_batch_max, b.decode_batch_max),
                    max(a.decode_context_max, b.decode_context_max), max(a.prefill_length_max, b.prefill_length_max),
                    a.dtypes | b.dtypes, a.moe or b.moe)


def file_range(micro) -> FitRange:
    """The ranges one micro file covers."""
    fp8 = _extra_rows(micro, "fp8_matmul")
    decode = [r for r in micro.attention if r.phase == "decode"]
    prefill = [r for r in micro.attention if r.phase == "prefill"]
    return FitRange(
        gemm_rows_max=max([r.m for r in micro.matmul] + [int(r.get("m", 0)) for r in fp8], default=0),
        decode_batch_max=max((r.batch for r in decode), default=0),
        decode_context_max=max((r.context_len or 0 for r in decode), default=0),
        prefill_length_max=max((r.seq_len or 0 for r in prefill), default=0),
        dtypes=frozenset(([micro.dtype] if micro.matmul else []) + (["fp8"] if fp8 else [])),
        moe=bool(_extra_rows(micro, "grouped_mm")))


@functools.lru_cache(maxsize=64)
def fit_range(fitted_from: str) -> FitRange | None:
    """The union over the micro files ``fitted_from`` names (paths under the data root);
    None when it names none that can be read (an entry that is an assumption)."""
    from simulator.specs import registry
    from simulator.specs.measurement import load_micro

    out = None
    for name in filter(None, (part.strip() for part in fitted_from.split(";"))):
        path = registry.data_root() / name
        if not path.name.startswith("micro-") or not path.is_file():
            continue
        try:
            one = file_range(load_micro(path))
        except SpecError:
            continue
        out = one if out is None else _merge(out, one)
    return out
