"""The idealized runtime (Narayanan et al., "Cheaply Evaluating Inference Efficiency Metrics
for Autoregressive Transformer APIs", NeurIPS 2023): every model on the same hardware and
stack without contention, each on the fewest devices that hold it, so that runtimes compare
models, not deployments.

  T(p, o) = F(p) + g (o - 1)        s per query of a p-token prompt and o output tokens
  F(p)    = TTFT of the prompt      (the prefill pass that yields the first token)
  g       = TPOT                    (mean decode step; at the reference prompt p_ref)
  cost-aware runtime = T(p, o) x devices     accelerator-seconds per query

All from the predict path (simulator.api.predict_many on the fewest devices that hold the
model at the longest prompt, engine/sizing.py); with the ``ideal`` stack that is the
speed-of-light roofline, with another stack that stack's runtime.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from simulator.api import fewest_devices, predict_many, resolve_hardware, resolve_model, resolve_stack
from simulator.specs.workload import workload


@dataclasses.dataclass(frozen=True)
class Idealized:
    """One model's idealized runtime (None everywhere when nothing up to the search's limit holds it)."""

    model: str
    params: float                         # parameters, counted from the model's graph
    prompts: tuple[int, ...]
    output: int
    tp: int | None
    pp: int | None
    first_token_s: tuple[float, ...] | None     # F(p) for each prompt
    per_token_s: float | None                   # g at the reference prompt
    runtime_s: tuple[float, ...] | None         # T(p, o) for each prompt

    @property
    def devices(self) -> int | None:
        return None if self.tp is None else self.tp * self.pp

    @property
    def accelerator_s(self) -> tuple[float, ...] | None:
        return None if self.runtime_s is None else tuple(t * self.devices for t in self.runtime_s)


def reference_prompt(prompts: tuple[int, ...]) -> int:
    """p_ref: the median prompt (the lower middle one of an even count)."""
    return sorted(prompts)[(len(prompts) - 1) // 2]


def idealize(model: str, hardware: str, stack: str = "ideal", prompts: tuple[int, ...] = (128, 512, 2048),
             output: int = 128, batch: int = 1, **dtypes) -> Idealized:
    """One model's F(p), g and T(p, o) on the fewest ``hardware`` devices that hold it."""
    from simulator.graph.transformer import build, parameter_count

    name, arch = resolve_model(model)
    params = float(parameter_count(build(arch)))      # counted from the graph, as `specs list` does
    hw, st = resolve_hardware(hardware), resolve_stack(stack)
    w = fewest_devices((name, arch), hw, st, workload(batch=batch, prompt=max(prompts), output=output, **dtypes))
    if w is None:
        return Idealized(name, params, tuple(prompts), output, None, None, None, None, None)
    p = np.array(prompts)
    out = predict_many((name, arch), hw, st, batch, p, output, tp=w.tp, pp=w.pp, **dtypes)
    g = float(out["tpot_s"][list(prompts).index(reference_prompt(prompts))]) if output > 1 else 0.0
    first = tuple(float(x) for x in out["ttft_s"])
    return Idealized(name, params, tuple(prompts), output, w.tp, w.pp, first, g,
                     tuple(f + g * (output - 1) for f in first))
