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
so every sequence has exactly N new tokens (checked). Every point gets one warm-up
generate (2 tokens) before its reps.

Writes DIR/hf-generate-<gpu>.json (schema ``llmsim-hf-generate/1``,
simulator/calibration/importers/hf_generate.py) after every point, atomically, so a timeout
keeps what was measured, and DIR/hf-generate-<gpu>.log. ``--budget-s`` is split over the
models still to run; a point whose turn comes after its model's share is skipped (logged).

  python -m validation.harness.hf_generate --out DIR [--models a,b] [--budget-s 390]
  python -m validation.harness.hf_generate --out DIR --tiny --device cpu   (smoke test)
"""
from __future__ import annotations

import argparse
import gc
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
# (batch, prompt, output), cheapest first within a model so a short budget keeps the spread
POINTS = ((1, 128, 64), (8, 128, 64), (32, 128, 32), (1, 1024, 64), (4, 512, 64), (64, 128, 32),
          (16, 256, 32), (1, 4096, 32), (32, 512, 32), (16, 1024, 32), (8, 2048, 32), (64, 512, 32),
          (64, 1024, 32), (16, 4096, 32))
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


def measure_point(model, cfg, batch: int, prompt: int, output: int, reps: int, device: str, sync) -> dict:
    """One run of the schema: the prefill and generate reps of (batch, prompt, output)."""
    import torch

    gen = torch.Generator(device="cpu").manual_seed(batch * 100003 + prompt)
    ids = torch.randint(3, cfg.vocab_size, (batch, prompt), generator=gen).to(device)
    mask = torch.ones_like(ids)
    eos = eos_of(cfg)
    timed_generate(model, ids, mask, 2, eos, sync)                      # warm-up: this shape's kernels
    prefill = [timed_generate(model, ids, mask, 1, eos, sync) for _ in range(reps)]
    generate = [timed_generate(model, ids, mask, output, eos, sync) for _ in range(reps)]
    return {"batch": batch, "prompt": prompt, "output": output, "prefill_s": prefill, "generate_s": generate,
            "spread": {"prefill_rel": _spread(prefill), "generate_rel": _spread(generate)}}


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


def run(args) -> dict:
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
    models = ["tiny"] if args.tiny else args.models.split(",")
    points = TINY_POINTS if args.tiny else POINTS
    start = time.perf_counter()
    for m, name in enumerate(models):
        share = (args.budget_s - (time.perf_counter() - start)) / (len(models) - m)
        t_model = time.perf_counter()
        config = TINY if args.tiny else spec_config(name, root)
        model, cfg = build(config, device)
        n_params = params_of(model)
        doc["models"][name] = {"params": n_params, "attn_implementation": getattr(cfg, "_attn_implementation", None),
                               "config": config}
        log(f"{name}: built in {time.perf_counter() - t_model:.1f} s, {n_params / 1e9:.3f} B params, "
            f"attention {doc['models'][name]['attn_implementation']}, share {share:.0f} s")
        for _ in range(2):                                                  # first calls: allocator, libraries
            measure_point(model, cfg, 1, 16, 4, 1, device, sync)
        for batch, prompt, output in points:
            if time.perf_counter() - t_model > share:
                log(f"{name}: skipped B={batch} S={prompt} N={output} (model's share of the budget spent)")
                continue
            if too_slow(n_params, batch, prompt) and not args.tiny:
                log(f"{name}: skipped B={batch} S={prompt} (prefill estimated over {MAX_PREFILL_S} s)")
                continue
            try:
                row = measure_point(model, cfg, batch, prompt, output, args.reps, device, sync)
            except torch.OutOfMemoryError as err:
                log(f"{name}: B={batch} S={prompt} N={output} out of memory ({str(err)[:80]})")
                torch.cuda.empty_cache()
                continue
            doc["runs"].append({"model": name, **row})
            write(path, doc)
            ttft = statistics.median(row["prefill_s"])
            tpot = (statistics.median(row["generate_s"]) - ttft) / (output - 1)
            log(f"{name}: B={batch} S={prompt} N={output} TTFT {ttft * 1e3:.2f} ms TPOT {tpot * 1e3:.3f} ms "
                f"(spread {row['spread']['prefill_rel']:.1%} / {row['spread']['generate_rel']:.1%})")
        del model
        gc.collect()
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
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
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--budget-s", type=float, default=390.0)
    ap.add_argument("--tiny", action="store_true", help="a 2-layer config and two small points (smoke test)")
    run(ap.parse_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
