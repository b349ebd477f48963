"""Real-GPU measurement harness of the `pytorch-ref` stack.

    python -m validation.harness.measure --out DIR [--quick] [--budget-s N] [--suite dense,fp8,long,moe]

Writes DIR/e2e-<gpu-slug>.json, DIR/micro-<gpu-slug>.json and
DIR/measure-<gpu-slug>.log (3 files). Order of work: environment block
(with the two ceilings) and idle power, microbenchmarks, then end-to-end
points model by model, every JSON rewritten after each section / model so
that a timeout still leaves data. See README.md beside this file.

`--dry-run` prints the planned grid and its time estimate for an assumed
H100 and H200 without touching a GPU.
"""

from __future__ import annotations

from validation.harness.runlog import T0, log  # first: the budget counts from here

import argparse  # noqa: E402
import gc  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402

from simulator.specs import registry  # noqa: E402
from simulator.specs.measurement import MICRO_SCHEMA  # noqa: E402
from validation.harness import HARNESS_VERSION  # noqa: E402
from validation.harness import points as P  # noqa: E402
from validation.harness.config import UnsupportedModelError, load_spec, micro_inputs  # noqa: E402
from validation.harness.e2e import E2E  # noqa: E402
from validation.harness.jsonfile import write_json  # noqa: E402

DEFAULT_SPEC_DIR = registry.data_root() / "model_specs"
END_RESERVE_S = 4.0  # kept free at the end for writing files and the summary
ENERGY_TARGET_POINTS = 17


def resolve_models(names, spec_dir: Path):
    """-> list of (name, ModelConfig or None, problem or None)."""
    out = []
    for n in names:
        p = Path(n)
        if n.endswith((".yaml", ".yml")) or p.exists():
            path = p
        else:
            path = spec_dir / f"{n}.yaml"
        if not path.exists():
            out.append((n, None, f"spec file missing: {path}"))
            continue
        try:
            out.append((n, load_spec(path), None))
        except UnsupportedModelError as e:
            out.append((n, None, f"unsupported: {e}"))
        except Exception as e:
            out.append((n, None, f"bad spec: {type(e).__name__}: {e}"))
    return out


def resolve_items(args):
    """-> ([(suite, ModelConfig)], [(name, problem)]): every chosen suite's models (``--models``
    replaces each suite's list; ``--quick`` takes the dense suite's smallest model and every
    model of the other suites), in the suite's linear dtype."""
    spec_dir = Path(args.spec_dir)
    items, problems = [], []
    for suite in P.parse_suites(args.suite):
        if args.models:
            names = args.models.split(",")
        elif args.quick and suite.name == "dense":
            names = quick_models(spec_dir)
        else:
            names = list(suite.models)
        for n, c, e in resolve_models(names, spec_dir):
            if c is not None:
                try:
                    c = c.variant(suite.linear_dtype)
                except UnsupportedModelError as exc:
                    c, e = None, f"unsupported: {exc}"
            if c is None:
                problems.append((suite.name, n, e))
            else:
                items.append((suite, c))
    return items, problems


def quick_models(spec_dir: Path):
    if (spec_dir / "llama-3.2-1b.yaml").exists():
        return ["llama-3.2-1b"]
    cands = []
    for p in sorted(spec_dir.glob("*.yaml")):
        try:
            cands.append((load_spec(p).param_count(), str(p)))
        except Exception:
            pass
    return [min(cands)[1]] if cands else []


# =========================================================================== main
def energy_per_item(quick: bool, n_items: int) -> int:
    return 2 if quick else max(3, math.ceil(ENERGY_TARGET_POINTS / max(1, n_items)))


def dry_run(args):
    items, problems = resolve_items(args)
    for suite, n, e in problems:
        print(f"{suite}/{n}: {e}")
    micro = not args.skip_micro
    for gp in (P.H100, P.H200):
        rows, total = P.estimate_run(items, gp, args.quick, energy_per_item(args.quick, len(items)), micro)
        print(f"\n{gp.name}: estimated total {total:.0f} s (fixed {P.FIXED_EST_S:.0f} + micro {P.MICRO_EST_S if micro else 0:.0f})")
        npts = 0
        for r in rows:
            label = f"{r['suite']}/{r['model']}"
            if not r["fits"]:
                print(f"  {label:22s} does not fit")
                continue
            npts += r["prefill"] + r["decode"]
            print(f"  {label:22s} prefill {r['prefill']:3d} decode {r['decode']:3d} mem-skipped {r['skipped']:3d}  est {r['cost_s']:6.1f} s "
                  f"(prefill {r['prefill_cost_s']:.1f}, decode {r['decode_cost_s']:.1f})")
        print(f"  points: {npts}")
    return 0


def summary(e2e_doc, micro_res, env):
    import builtins

    def print(*a):  # noqa: A001 - to stdout and the log file
        line = " ".join(str(x) for x in a)
        builtins.print(line, flush=True)
        if log.f:
            log.f.write(line + "\n")
            log.f.flush()

    c = env.get("ceilings", {})
    print("\n================ summary ================")
    print(f"GPU {env.get('gpu_name')} | torch {env.get('torch_version')} CUDA {env.get('cuda_version')} | driver {env.get('driver_version')}")
    mm, cp = c.get("matmul_bf16_8192", {}), c.get("copy_2gib", {})
    print(f"ceilings: matmul bf16 8192^3 {mm.get('flop_per_s', 0) / 1e12:.0f} TFLOP/s | copy 2 GiB {cp.get('bytes_per_s', 0) / 1e9:.0f} GB/s (read+write)")
    ip = env.get("idle_power", {})
    print(f"idle power {ip.get('idle_power_w')} W; power limit {env.get('power_limit_w')} W")
    if micro_res:
        print(f"micro: matmul {len(micro_res['matmul'])}, attention {len(micro_res['attention'])}, elementwise {len(micro_res['elementwise'])}, "
              f"copy {len(micro_res['copy'])}, skipped {len(micro_res['skipped'])}")
        la = micro_res.get("launch") or {}
        if la:
            print(f"launch: graph {la['graph_per_kernel_s'] * 1e6:.2f} us/kernel, eager {la['eager_per_kernel_s'] * 1e6:.2f} us/kernel")
        pw = micro_res.get("power") or {}
        for k in ("matmul", "copy"):
            if k in pw:
                print(f"power loop {k}: {pw[k].get('power_mean_w')} W over {pw[k].get('duration_s', 0):.1f} s")
    pts = e2e_doc["points"]
    print(f"{'suite/model':22s} {'prefill':>7s} {'decode':>6s} {'energy':>6s}  examples (median latency)")
    for m in e2e_doc["models"]:
        same = lambda r: r["model"] == m["name"] and r.get("suite") == m.get("suite")  # noqa: E731
        mp = [p for p in pts if same(p)]
        pre = [p for p in mp if p["phase"] == "prefill"]
        dec = [p for p in mp if p["phase"] == "decode"]
        ne = sum(1 for e in e2e_doc["energy"] if same(e))
        ex = []
        for p in (pre[:1] + pre[-1:] + dec[:1] + dec[-1:]):
            L = p["prompt_len"] if p["phase"] == "prefill" else p["context_len"]
            ex.append(f"{p['phase'][0]}{p['batch']}x{L}={p['latency_median_s'] * 1e3:.2f}ms")
        status = m.get("status")
        print(f"{m.get('suite', '-') + '/' + m['name']:22s} {len(pre):7d} {len(dec):6d} {ne:6d}  {status}: {' '.join(ex)}")
    nsk = len(e2e_doc["skipped"])
    print(f"total points {len(pts)} over {len({p['model'] for p in pts})} models; energy points {len(e2e_doc['energy'])}; "
          f"skipped {nsk}; errors {len(e2e_doc['errors'])}")
    reasons = {}
    for s in e2e_doc["skipped"]:
        r = s["reason"].split(":")[0]
        reasons[r] = reasons.get(r, 0) + 1
    if reasons:
        print("skipped by reason: " + ", ".join(f"{k}: {v}" for k, v in reasons.items()))
    print(f"elapsed {time.perf_counter() - T0:.1f} s")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", help="output directory (created)")
    ap.add_argument("--quick", action="store_true", help="small grid for smoke tests (~1 min)")
    ap.add_argument("--budget-s", type=float, default=None, help="wall-clock budget from start (default 540; 80 with --quick)")
    ap.add_argument("--suite", default="dense", help=f"comma list of suites: {', '.join(P.SUITES)} (default dense)")
    ap.add_argument("--models", default=None, help="comma list of model names (model_specs/NAME.yaml) or spec paths; "
                                                    "replaces each suite's models")
    ap.add_argument("--spec-dir", default=str(DEFAULT_SPEC_DIR))
    ap.add_argument("--skip-micro", action="store_true", help="no microbenchmarks (e2e only)")
    ap.add_argument("--skip-e2e", action="store_true", help="no end-to-end points (micro only)")
    ap.add_argument("--dry-run", action="store_true", help="print the plan and estimates for an H100 and an H200; no GPU")
    args = ap.parse_args(argv)
    try:
        P.parse_suites(args.suite)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.budget_s is None:
        args.budget_s = 80.0 if args.quick else 540.0
    if args.dry_run:
        return dry_run(args)
    if not args.out:
        ap.error("--out is required")

    import torch

    from validation.harness import gpu as G
    from validation.harness.micro import Micro
    from validation.harness.model import self_check, tiny_config

    if not torch.cuda.is_available():
        print("error: no CUDA device visible to torch", file=sys.stderr)
        return 2
    deadline = T0 + args.budget_s - END_RESERVE_S
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.cuda.init()
    nvml = G.Nvml()
    env = G.environment(nvml)
    slug = env["gpu_slug"]
    log.open(out / f"measure-{slug}.log")
    log(f"harness {HARNESS_VERSION} on {env['gpu_name']} ({env['sm_count']} SMs, {env['total_memory_bytes'] / P.GiB:.1f} GiB), "
        f"torch {env['torch_version']} CUDA {env['cuda_version']}, driver {env.get('driver_version')}, budget {args.budget_s:.0f} s, quick={args.quick}")
    if not nvml.ok:
        log(f"NVML unavailable: {nvml.error}")

    # ---- idle power first (GPU idle), then the ceilings
    env["idle_power"] = G.idle_power(nvml, 1.0 if args.quick else 2.0)
    log(f"idle power {env['idle_power'].get('idle_power_w')} W (energy counter: {env['idle_power'].get('idle_power_from_energy_w')} W)")
    env["ceilings"] = dict(matmul_bf16_8192=G.matmul_ceiling(), copy_2gib=G.copy_ceiling())
    mm, cp = env["ceilings"]["matmul_bf16_8192"], env["ceilings"]["copy_2gib"]
    log(f"ceilings: matmul {mm['flop_per_s'] / 1e12:.1f} TFLOP/s, copy {cp['bytes_per_s'] / 1e9:.0f} GB/s")
    torch.cuda.empty_cache()
    free, total = torch.cuda.mem_get_info()
    gp = P.GpuProfile(env["gpu_name"], total, free, mm["flop_per_s"], cp["bytes_per_s"], env.get("l2_cache_bytes") or 50 * P.MiB)

    # ---- models, suite by suite
    resolved, problems = resolve_items(args)
    items = []
    pre_skipped = [dict(suite=sname, model=n, phase=None, reason=e) for sname, n, e in problems]
    for sname, n, e in problems:
        log(f"model {sname}/{n}: skipped ({e})")
    for suite, c in resolved:
        if c.weight_bytes() + P.MEM_MARGIN + 1 * P.GiB > free:
            pre_skipped.append(dict(suite=suite.name, model=c.name, phase=None,
                                    reason=f"does not fit: weights {c.weight_bytes() / P.GiB:.1f} GiB, free {free / P.GiB:.1f} GiB"))
            log(f"model {suite.name}/{c.name}: skipped (weights {c.weight_bytes() / P.GiB:.1f} GiB do not fit)")
        else:
            items.append((suite, c))
    cfgs = list({(c.name, c.linear_dtype): c for _, c in items}.values())

    # ---- microbenchmarks
    micro_path = out / f"micro-{slug}.json"
    micro_doc = dict(schema=MICRO_SCHEMA, environment=env, run=dict(harness_version=HARNESS_VERSION, quick=args.quick, status="running"))
    mres = None
    if not args.skip_micro:
        micro_frac = 0.45 if args.quick else 0.25
        m = Micro(env, nvml, log, deadline=min(deadline, T0 + micro_frac * args.budget_s), quick=args.quick)
        mres = m.res
        micro_doc.update(mres)
        shapes, attn = micro_inputs(cfgs)
        log(f"microbenchmarks: {len(shapes)} matmul (N, K) shapes, {len(attn)} attention head layouts")
        for sec, fn in (("launch", m.launch), ("eager", m.eager), ("host_layer", m.host_layer),
                        ("synthetic", m.synthetic_layers),
                        ("energy", m.energy), ("copy", m.copy), ("power", m.power), ("elementwise", m.elementwise),
                        ("attention", lambda: m.attention(attn)), ("matmul", lambda: m.matmul(shapes))):
            if m.left() < 0:
                m._skip(sec, "whole section")
                log(f"  {sec}: skipped (micro time budget)")
                continue
            try:
                fn()
            except Exception as e:
                m.res.setdefault("errors", []).append(dict(section=sec, error=f"{type(e).__name__}: {e}"[:500], traceback=traceback.format_exc()[-2000:]))
                log(f"  {sec}: ERROR {type(e).__name__}: {e}")
                torch.cuda.empty_cache()
            micro_doc.update(m.res)
            micro_doc["run"]["elapsed_s"] = time.perf_counter() - T0
            write_json(micro_path, micro_doc)
        micro_doc["run"]["status"] = "complete" if not m.res["skipped"] else "partial"
        write_json(micro_path, micro_doc)
        gc.collect()
        torch.cuda.empty_cache()

    # ---- end to end
    e2e = E2E(args, env, nvml, gp, out / f"e2e-{slug}.json", deadline)
    e2e.doc["skipped"].extend(pre_skipped)
    variants = ["bf16"] + [v for v, wanted in (("fp8", any(c.fp8 for _, c in items)), ("moe", any(c.is_moe for _, c in items)))
                           if wanted]
    for variant in variants:  # bf16 into self_check as before; the variants' checks beside it
        try:
            check = self_check(tiny_config(variant), device="cuda")
        except Exception as e:
            check = dict(error=f"{type(e).__name__}: {e}"[:500])
        if variant == "bf16":
            e2e.doc["self_check"] = check
        else:
            e2e.doc.setdefault("variant_self_checks", {})[variant] = check
        log(f"self-check {variant} (decode after prefill vs prefill of S+1): {check}")
    e2e.flush()
    if not args.skip_e2e:
        n_energy = energy_per_item(args.quick, len(items))
        free_now = torch.cuda.mem_get_info()[0]
        ests = [e2e.est_model_cost(suite, c, free_now, n_energy) for suite, c in items]
        log(f"e2e plan: {len(items)} models over suites {','.join(dict.fromkeys(s.name for s, _ in items))}, "
            f"estimated {sum(ests):.0f} s, {e2e.left():.0f} s left, {n_energy} energy points per model")
        for i, (suite, c) in enumerate(items):
            rest = sum(ests[i:]) * e2e.calib
            left = e2e.left()
            if left < 5:
                e2e.doc["skipped"].append(dict(suite=suite.name, model=c.name, phase=None, reason="time budget: run deadline before this model"))
                log(f"model {suite.name}/{c.name}: skipped (time budget)")
                continue
            share = ests[i] * e2e.calib
            alloc = share * 1.25 if rest <= left else left * share / max(rest, 1e-9)
            try:
                e2e.run_model(suite, c, alloc, n_energy)
            except Exception as e:
                e2e.doc["errors"].append(dict(suite=suite.name, model=c.name, reason=f"{type(e).__name__}: {e}"[:500],
                                              traceback=traceback.format_exc()[-2000:]))
                log(f"model {suite.name}/{c.name}: ERROR {type(e).__name__}: {e}")
                gc.collect()
                torch.cuda.empty_cache()
            e2e.flush()
    status = "complete" if not any(s["reason"].startswith("time budget") for s in e2e.doc["skipped"]) and not e2e.doc["errors"] else "partial"
    e2e.flush(status)
    summary(e2e.doc, mres, env)
    log(f"done: {out / ('e2e-' + slug + '.json')}, {micro_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
