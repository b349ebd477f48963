"""Hugging Face transformers ``generate()`` with its defaults, timed end to end: the stack
`hf-transformers` is fitted on these files (``llmsim calibrate --from-runs``).

  TTFT  = median over reps of wall(generate(max_new_tokens=1))
  e2e   = median over reps of wall(generate(max_new_tokens=N, min_new_tokens=N))
  TPOT  = (e2e - TTFT) / (N - 1)                    (the importer computes both)

Each wall time is taken with the device synchronized before and after the call. A model is
built from its spec's Hugging Face config (model_specs/NAME.yaml, ``config:``) with random
bf16 weights on the device (no checkpoint download); generate runs greedy with the library's
defaults (DynamicCache, the default attention implementation, logits processors, the
stopping criteria), the pad token set to the EOS token, and min_new_tokens = max_new_tokens
so every sequence has exactly N new tokens (checked).

Protocol: every model is built and kept resident; every (model, point) case is warmed up
with one generate of its N tokens (the first generate of a shape allocates each size the
growing DynamicCache takes: 2-4x slower); then rounds, each taking one generate(1) and one
generate(N) of every case, so a slow spell of the host (the timings are host-bound) falls
on all models and points alike. (hf-generate-1 ran models one after another, 3 reps per
point after a 2-token warm-up: its first rep of each point is the slow one.)

Writes DIR/hf-generate-<gpu>.json (schema ``llmsim-hf-generate/1``,
simulator/calibration/importers/hf_generate.py) after every round, atomically, so a timeout
keeps what was measured, and DIR/hf-generate-<gpu>.log. After two rounds, no round starts
that would end past ``--budget-s``.

  python -m validation.harness.hf_generate --out DIR [--models a,b] [--reps 5] [--budget-s 150]
  python -m validation.harness.hf_generate --out DIR --tiny --device cpu   (smoke test)
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import yaml

from validation.harness.gpu import Nvml, gpu_slug, utc_now
from validation.harness.runlog import log

SCHEMA = "llmsim-hf-generate/1"
MODELS = ("llama-3.2-1b", "llama-3.2-3b", "qwen2.5-7b", "llama-3.1-8b", "qwen2.5-14b")
# (batch, prompt, output) of every model
POINTS = ((1, 128, 16), (8, 512, 16), (32, 128, 16), (1, 2048, 16), (16, 1024, 16), (64, 256, 16))
TINY_POINTS = ((1, 16, 4), (2, 32, 4))
MAX_PREFILL_S = 1.0          # skip points whose prefill alone would take longer (estimate below)
PREFILL_FLOP_S = 5e14        # FLOP/s assumed for that estimate (2 x params x tokens / rate)
NOT_CONFIG = ("architectures", "model_type", "torch_dtype", "dtype")
TINY = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 256, "max_position_embeddings": 512,
        "bos_token_id": 1, "eos_token_id": 2}


def spec_config(name: str, root: Path) -> dict:
    """The Hugging Face config mapping of model_specs/NAME.yaml."""
    return yaml.safe_load((root / "model_specs" / f"{name}.yaml").read_text())["config"]


def build(config: dict, device: str):
    """(model, config) with random bf16 weights created on ``device``."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.for_model(config["model_type"], **{k: v for k, v in config.items() if k not in NOT_CONFIG})
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    return model.to(device).eval(), cfg


def eos_of(cfg) -> int:
    eos = cfg.eos_token_id
    return int(eos[0] if isinstance(eos, (list, tuple)) else (eos if eos is not None else 0))


def timed_generate(model, ids, mask, n: int, eos: int, sync) -> float:
    """Seconds of one generate of exactly ``n`` new tokens (synchronized around it)."""
    import torch

    sync()
    t0 = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=n, min_new_tokens=n,
                             do_sample=False, pad_token_id=eos, eos_token_id=eos)
    sync()
    dt = time.perf_counter() - t0
    if out.shape[1] != ids.shape[1] + n:
        raise RuntimeError(f"generate made {out.shape[1] - ids.shape[1]} tokens, expected {n}")
    return dt


def _spread(ts: list[float]) -> float:
    """(max - min) / median of a rep list."""
    return (max(ts) - min(ts)) / statistics.median(ts)


def params_of(model) -> int:
    return sum(p.numel() for p in model.parameters())


def environment(device: str, nvml: Nvml | None) -> dict:
    import torch
    import transformers

    env = {"date_utc": utc_now(), "torch_version": torch.__version__, "transformers_version": transformers.__version__,
           "python_version": platform.python_version(), "cpu": _cpu_name(), "cpu_count": os.cpu_count(),
           "torch_threads": torch.get_num_threads(), "device": device,
           "stack": "hf-transformers", "stack_notes": [
               "AutoModelForCausalLM.from_config (random bf16 weights), model.generate defaults: greedy, DynamicCache",
               "min_new_tokens = max_new_tokens; pad_token_id = eos_token_id; attention_mask all ones",
               "TTFT = wall(generate(1)); TPOT = (wall(generate(N)) - TTFT) / (N - 1); synchronized around each"]}
    if device.startswith("cuda"):
        p = torch.cuda.get_device_properties(0)
        env.update(gpu_name=torch.cuda.get_device_name(0), sm_count=p.multi_processor_count,
                   total_memory_bytes=p.total_memory, cuda_version=torch.version.cuda,
                   cudnn_version=torch.backends.cudnn.version())
        if nvml is not None:
            env.update(nvml.info())
    return env


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def write(path: Path, doc: dict) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    os.replace(tmp, path)


def too_slow(params: int, batch: int, prompt: int) -> bool:
    """Whether the prefill alone is estimated past MAX_PREFILL_S (2 params FLOP a token)."""
    return 2.0 * params * batch * prompt / PREFILL_FLOP_S > MAX_PREFILL_S


def cases(models: dict, points, tiny: bool) -> list[dict]:
    """Every (model, point) to measure: its inputs built once, reps collected in place."""
    import torch

    out = []
    for name, (model, cfg, n_params) in models.items():
        for batch, prompt, output in points:
            if too_slow(n_params, batch, prompt) and not tiny:
                log(f"{name}: skipped B={batch} S={prompt} (prefill estimated over {MAX_PREFILL_S} s)")
                continue
            gen = torch.Generator(device="cpu").manual_seed(batch * 100003 + prompt)
            ids = torch.randint(3, cfg.vocab_size, (batch, prompt), generator=gen).to(model.device)
            out.append({"name": name, "model": model, "eos": eos_of(cfg), "ids": ids, "mask": torch.ones_like(ids),
                        "row": {"model": name, "batch": batch, "prompt": prompt, "output": output,
                                "prefill_s": [], "generate_s": []}})
    return out


def one_round(case: dict, sync, warm_up: bool = False) -> None:
    """generate(1) then generate(N) of one case (a warm-up: generate(N) alone, not kept)."""
    row, args = case["row"], (case["model"], case["ids"], case["mask"])
    if warm_up:
        timed_generate(*args, row["output"], case["eos"], sync)
        return
    row["prefill_s"].append(timed_generate(*args, 1, case["eos"], sync))
    row["generate_s"].append(timed_generate(*args, row["output"], case["eos"], sync))


def run(args) -> dict:
    """Build every model (all resident), warm every case up, then measure in rounds: each
    round takes one generate(1) and one generate(N) of every case, so a slow spell of the host
    falls on all models and points alike rather than on whichever ran then."""
    import torch

    device = args.device
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    slug = gpu_slug(torch.cuda.get_device_name(0)) if device.startswith("cuda") else "cpu"
    path = out / f"hf-generate-{slug}.json"
    log.open(out / f"hf-generate-{slug}.log")
    nvml = Nvml() if device.startswith("cuda") else None
    doc = {"schema": SCHEMA, "hardware": args.hardware, "weight_dtype": "bf16", "activation_dtype": "bf16",
           "kv_dtype": "bf16", "session": out.name, "environment": environment(device, nvml), "models": {}, "runs": []}
    root = Path(__file__).resolve().parents[2]
    start = time.perf_counter()
    built = {}
    for name in (["tiny"] if args.tiny else args.models.split(",")):
        config = TINY if args.tiny else spec_config(name, root)
        model, cfg = build(config, device)
        built[name] = (model, cfg, params_of(model))
        doc["models"][name] = {"params": built[name][2], "config": config,
                               "attn_implementation": getattr(cfg, "_attn_implementation", None)}
        log(f"{name}: built, {built[name][2] / 1e9:.3f} B params, attention {doc['models'][name]['attn_implementation']}")
    todo = cases(built, TINY_POINTS if args.tiny else POINTS, args.tiny)
    t0 = time.perf_counter()
    for case in todo:
        one_round(case, sync, warm_up=True)
    round_s = time.perf_counter() - t0
    log(f"warm-up of {len(todo)} cases: {round_s:.1f} s")
    doc["runs"] = [case["row"] for case in todo]
    for r in range(args.reps):
        if r >= 2 and time.perf_counter() - start + 1.2 * round_s > args.budget_s:
            log(f"stopped after {r} rounds (budget {args.budget_s:.0f} s)")
            break
        t0 = time.perf_counter()
        for case in todo:
            one_round(case, sync)
        round_s = time.perf_counter() - t0
        write(path, doc)
        log(f"round {r + 1}: {round_s:.1f} s")
    for row in doc["runs"]:
        ttft = statistics.median(row["prefill_s"])
        tpot = (statistics.median(row["generate_s"]) - ttft) / (row["output"] - 1)
        row["spread"] = {"prefill_rel": _spread(row["prefill_s"]), "generate_rel": _spread(row["generate_s"])}
        log(f"{row['model']}: B={row['batch']} S={row['prompt']} N={row['output']} TTFT {ttft * 1e3:.2f} ms "
            f"TPOT {tpot * 1e3:.3f} ms (spread {row['spread']['prefill_rel']:.1%} / {row['spread']['generate_rel']:.1%})")
    doc["environment"]["finished_utc"] = utc_now()
    write(path, doc)
    log(f"wrote {path} ({len(doc['runs'])} runs)")
    return doc


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--hardware", default="h200-sxm", help="the registry device the runs are on")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--reps", type=int, default=5, help="rounds (at least 2 are always run)")
    ap.add_argument("--budget-s", type=float, default=150.0, help="no round starts after the first two "
                                                                  "that would end past this")
    ap.add_argument("--tiny", action="store_true", help="a 2-layer config and two small points (smoke test)")
    run(ap.parse_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
