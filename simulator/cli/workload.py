"""The workload options shared by ``llmsim predict``, ``compare`` and ``roofline``, and the
argparse types every command's options use, so a value of the wrong type or range is one
line from argparse (``llmsim: error: argument --batch: ...``) and exit 2, before any work."""
from __future__ import annotations

import argparse
import math

INT64_MAX = 2 ** 63 - 1          # the kernels count in int64: a larger count cannot be represented


def int64(text: str) -> int:
    """A whole number that fits in int64 (its range is the library's to check)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value {text!r} (expected a whole number)") from None
    if abs(value) > INT64_MAX:
        raise argparse.ArgumentTypeError(f"expected a whole number of at most {INT64_MAX:,} (2^63 - 1), got {text}")
    return value


def positive_int(text: str) -> int:
    """A whole number 1 <= n <= 2^63 - 1."""
    value = int64(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a whole number > 0, got {text}")
    return value


def at_most(limit: int):
    """positive_int, at most ``limit`` (an option that sizes a pool of processes)."""
    def parse(text: str) -> int:
        value = positive_int(text)
        if value > limit:
            raise argparse.ArgumentTypeError(f"expected a whole number from 1 to {limit:,}, got {text}")
        return value
    return parse


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0."""
    value = _finite(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return value


def probability(text: str) -> float:
    """A finite number 0 <= p <= 1."""
    value = _finite(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a probability from 0 to 1, got {text}")
    return value


def duration(text: str) -> float:
    """Seconds > 0: a bare number ('0.2') or a time with a unit ('200 ms')."""
    from simulator import units

    try:
        value = float(text)
    except ValueError:
        try:
            value = units.parse(text, "time")
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"expected seconds or a time such as '200 ms' ({exc})") from None
    if not math.isfinite(value) or not value > 0:
        raise argparse.ArgumentTypeError(f"expected a time > 0 (seconds, or e.g. '200 ms'), got {text!r}")
    return value


def name_list(text: str) -> list[str]:
    """Comma-separated names or paths: none empty, none repeated (whether each exists is the
    registry's to say, with the closest names)."""
    names = [part.strip() for part in text.split(",")]
    if not any(names):
        raise argparse.ArgumentTypeError(f"expected one or more comma-separated names, got {text!r}")
    if "" in names:
        raise argparse.ArgumentTypeError(f"an empty name in {text!r} (a stray comma?)")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise argparse.ArgumentTypeError(f"'{repeated[0]}' is named more than once in {text!r}")
    return names


def hardware_names(names: list[str]) -> list[str]:
    """Each name (or path) resolved once, up front: an unknown one raises UnknownNameError
    naming it (with the closest names) before any work is done."""
    from simulator.specs import registry

    for name in names:
        registry.hardware(name)
    return names


def add_workload_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stack", default="pytorch-ref", help="software stack profile (default: pytorch-ref)")
    p.add_argument("--batch", type=positive_int, default=8, help="sequences per batch (default: 8)")
    p.add_argument("--prompt", type=positive_int, default=1024, help="prompt tokens per sequence (default: 1024)")
    p.add_argument("--output", type=positive_int, default=128, help="generated tokens per sequence (default: 128)")
    p.add_argument("--weight-dtype", help="weights: fp32 bf16 fp16 fp8 int8 int4, int4-g128, mxfp4 ... (default: the "
                                          "checkpoint's quantization_config, else bf16)")
    p.add_argument("--activation-dtype", default="bf16", help="activations / compute dtype")
    p.add_argument("--kv-dtype", default="bf16", help="KV cache dtype")
    p.add_argument("--tp", type=positive_int, default=1, help="tensor-parallel devices (default: 1)")
    p.add_argument("--pp", type=positive_int, default=1, help="pipeline stages (default: 1)")
    p.add_argument("--dp", type=positive_int, default=1, help="data-parallel replicas; the batch is split over them")
    p.add_argument("--ep", type=positive_int, default=1, help="expert-parallel devices (MoE experts split over them)")
    p.add_argument("--microbatches", type=positive_int, default=1, help="pipeline microbatches (default: 1)")
    p.add_argument("--draft-model", help="speculative decoding: the draft model")
    p.add_argument("--draft-tokens", type=positive_int, default=4, help="tokens drafted per iteration (default: 4)")
    p.add_argument("--acceptance", type=probability, default=0.7, help="per-token acceptance rate (default: 0.7)")
    p.add_argument("--format", choices=["table", "json"], default="table")


def workload_kwargs(args) -> dict:
    """The Workload fields (specs.workload) the options give; the stack is ``args.stack``."""
    weights = {} if args.weight_dtype is None else {"weight_dtype": args.weight_dtype}   # None: the checkpoint's
    return dict(batch=args.batch, prompt=args.prompt, output=args.output, **weights,
                activation_dtype=args.activation_dtype, kv_dtype=args.kv_dtype,
                tp=args.tp, pp=args.pp, dp=args.dp, ep=args.ep, microbatches=args.microbatches,
                draft_model=args.draft_model, draft_tokens=args.draft_tokens, acceptance=args.acceptance)


def model_workload(args):
    """The Workload the options give for ``args.model``: the checkpoint's weight format (its
    quantization_config) unless --weight-dtype is given (simulator.api.checkpoint_weights)."""
    from simulator.api import checkpoint_weights
    from simulator.specs.workload import workload

    return checkpoint_weights(args.model, workload(**workload_kwargs(args)))
