"""Serving curves for the report: each device under Poisson arrivals at each rate asked, as
``llmsim serving --rate R1,R2,... --prompt S --output N`` runs them (simulator/serving: its
default policy, REQUESTS requests from seed SEED), one run's metrics per rate."""
from __future__ import annotations

from simulator.errors import SimulatorError
from simulator.specs.workload import Workload

REQUESTS = 1000          # llmsim serving's --requests default
SEED = 1                 # and its --seed default


def serving_runs(model, hardware, stack: str, w: Workload, rates: list[float]) -> tuple[list[dict], str | None]:
    """(each rate's serving.simulate.Run.metrics, None), or ([], why) when the configuration
    cannot be served (pipeline stages, a draft model, no memory left for a KV cache)."""
    from simulator.serving.policy import Policy
    from simulator.serving.requests import generate, parse_lengths
    from simulator.serving.simulate import engine, serve

    options = dict(weight_dtype=w.weight_dtype, activation_dtype=w.activation_dtype, kv_dtype=w.kv_dtype, tp=w.tp,
                   pp=w.pp, dp=w.dp, ep=w.ep, microbatches=w.microbatches, draft_model=w.draft_model)
    try:
        eng = engine(model, hardware, stack, Policy(), **options)
    except SimulatorError as err:
        return [], str(err)
    prompt, output = parse_lengths(str(w.prompt), "--prompt"), parse_lengths(str(w.output), "--output")
    return [serve(eng, generate(REQUESTS, rate, prompt, output, SEED), rate).metrics for rate in rates], None
