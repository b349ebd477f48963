"""llmsim: an analytical performance simulator for LLM inference.

    >>> import simulator
    >>> p = simulator.predict(model="llama-3.1-8b", hardware="h100-sxm", batch=8, prompt=1024, output=128)
    >>> p.ttft_s, p.tpot_s, p.tokens_per_j
"""
from __future__ import annotations

__version__ = "0.1.0"

DEFAULT_STACK = "pytorch-ref"


def predict(model: str, hardware: str, stack: str = DEFAULT_STACK, batch: int = 8, prompt: int = 1024,
            output: int = 128, weight_dtype: str | None = None, activation_dtype: str = "bf16",
            kv_dtype: str = "bf16", tp: int = 1, pp: int = 1, dp: int = 1, ep: int = 1, microbatches: int = 1,
            draft_model: str | None = None, draft_tokens: int = 4, acceptance: float = 0.7):
    """Predict one scenario; returns a ``Prediction`` (seconds, joules, bytes).

    ``model``/``hardware``/``stack`` are registry names or paths to spec files (a model may
    also be a raw Hugging Face config.json). ``weight_dtype`` None takes the checkpoint's
    quantization_config (an AWQ model: int4-g128), else bf16. ``tp``/``pp``/``dp`` spread it over
    tp x pp x dp x ep devices (the batch split over dp replicas; ep splits a mixture of
    experts' experts, attention running data parallel). ``draft_model`` turns on speculative
    decoding with ``draft_tokens`` drafted per iteration, each accepted with probability
    ``acceptance``. Raises SimulatorError
    subclasses on bad input.
    """
    return _api().predict(model, hardware, stack, batch, prompt, output, (
        weight_dtype, activation_dtype, kv_dtype, tp, pp, dp, ep, microbatches, draft_model, draft_tokens, acceptance))


def _api():
    """simulator.api, imported on first use (``import simulator`` stays light): ~0.1 us a
    call once loaded, where a ``from simulator import api`` statement costs ~0.9 us here."""
    try:
        return _loaded[0]
    except IndexError:
        from simulator import api

        _loaded.append(api)
        return api


_loaded: list = []


def configure(model: str, hardware: str, stack: str = DEFAULT_STACK, **options):
    """A configuration resolved, checked and prepared once, for many predictions:
    ``configure(...).predict(batch, prompt, output)`` equals ``predict`` with the same
    arguments, in microseconds (no name lookups or file checks per call: configure again
    after editing a spec file). ``options`` are predict's keyword options."""
    from simulator.api import configure as configured

    return configured(model, hardware, stack, **options)


def predict_many(model: str, hardware: str, stack: str = DEFAULT_STACK, batch=8, prompt=1024, output=128, **options):
    """Many scenarios of one configuration at once: arrays of batch, prompt and output in, a
    dict of float64 arrays out (ttft_s, tpot_s, e2e_s, output_tokens_per_s, energy_j,
    tokens_per_j, memory_total_bytes, fits, ...), each equal to ``predict`` of that
    scenario. ``options`` are predict's keyword options (dtypes, parallelism, draft model)."""
    from simulator.api import predict_many as many

    return many(model, hardware, stack, batch, prompt, output, **options)
