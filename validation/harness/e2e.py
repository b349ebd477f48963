"""End-to-end points of one GPU run: suite by suite, model by model, each point timed (prefill:
eager calls under CUDA events; decode: CUDA-graph replays), energy loops for the chosen
points, the e2e file rewritten after every point (see README.md). Every point and energy
record carries what the simulator needs to predict it: suite, model, the dtypes of weights,
activations and KV cache, phase, batch and length."""

from __future__ import annotations

import gc
import sys
import time
import traceback

from simulator.specs.measurement import E2E_SCHEMA
from validation.harness import HARNESS_VERSION
from validation.harness import points as P
from validation.harness.jsonfile import write_json
from validation.harness.runlog import T0, log


def point_precision(suite, cfg) -> dict:
    """The fields each record of a point carries besides its key: suite and dtypes. FP8 W8A8:
    fp8 weights and matmul inputs, bf16 KV cache (and bf16 embedding, norms, attention)."""
    lin = cfg.linear_dtype
    return dict(suite=suite.name, dtype=lin, weight_dtype=lin, activation_dtype=lin, kv_dtype="bf16")


class E2E:
    def __init__(self, args, env, nvml, gp, out_path, deadline):
        self.args = args
        self.env = env
        self.nvml = nvml
        self.gp = gp
        self.path = out_path
        self.deadline = deadline
        self.calib_actual = 0.0
        self.calib_est = 0.0
        self.doc = dict(schema=E2E_SCHEMA, environment=env,
                        run=dict(harness_version=HARNESS_VERSION, quick=args.quick, budget_s=args.budget_s,
                                 argv=sys.argv[1:], status="running", elapsed_s=None),
                        self_check=None, models=[], points=[], energy=[], skipped=[], errors=[])

    def flush(self, status=None):
        self.doc["run"]["elapsed_s"] = time.perf_counter() - T0
        if status:
            self.doc["run"]["status"] = status
        write_json(self.path, self.doc)

    @property
    def calib(self):
        if self.calib_est <= 0:
            return 1.0
        return min(3.0, max(0.7, self.calib_actual / self.calib_est))

    def left(self):
        return self.deadline - time.perf_counter()

    # ---------------------------------------------------------------- points
    def _prefill(self, model, B, S, energy_loop):
        import torch

        from validation.harness import gpu as G

        kc, vc = model.new_cache(B, P.cache_len(S))
        toks = model.random_tokens(B, S)
        fn = lambda: model.prefill(toks, kc, vc)  # noqa: E731
        t_warm = G.time_events(fn, 1, warmups=1)[0]  # two warm-ups, the second timed to size the reps
        reps = P.prefill_reps(t_warm, self.args.quick)
        ts = G.time_events(fn, reps, warmups=0)
        res = G.summarize(ts)
        en = None
        if energy_loop:
            en = G.energy_loop(self.nvml, fn, res["latency_median_s"], P.ENERGY_LOOP_S)
        del kc, vc, toks
        torch.cuda.synchronize()
        return res, en

    def _decode(self, model, B, C, energy_loop):
        import torch

        from validation.harness import gpu as G

        kc, vc = model.new_cache(B, P.cache_len(C + 1))
        toks = model.random_tokens(B)
        g, out = G.capture_graph(lambda: model.decode(toks, C, kc, vc), warmups=P.DECODE_EAGER_WARMUPS)
        ts = G.time_replays(g, P.DECODE_REPLAYS, warm=P.DECODE_WARM_REPLAYS)
        res = G.summarize(ts)
        en = None
        if energy_loop:
            en = G.energy_loop(self.nvml, g.replay, res["latency_median_s"], P.ENERGY_LOOP_S)
        del g, out, kc, vc, toks
        torch.cuda.synchronize()
        return res, en

    # ---------------------------------------------------------------- per model
    def est_model_cost(self, suite, cfg, free_bytes, n_energy):
        free = free_bytes - cfg.weight_bytes()
        if free - P.MEM_MARGIN < 1 * P.GiB:
            return 0.0
        pts, _ = P.plan_model(cfg, self.gp, free, self.args.quick, suite)
        return P.cost_model_load(cfg, self.gp) + sum(p.est_cost_s for p in pts) + n_energy * P.cost_energy_point()

    def run_model(self, suite, cfg, allocation_s, n_energy):
        import torch

        from validation.harness.model import RefDecoder

        name = cfg.name
        t_model = time.perf_counter()
        gc.collect()
        torch.cuda.empty_cache()
        free0, total = torch.cuda.mem_get_info()
        need = cfg.weight_bytes() + P.MEM_MARGIN + 1 * P.GiB
        minfo = dict(suite=suite.name, **cfg.to_json())
        minfo.update(allocation_s=allocation_s, free_bytes_before_load=free0)
        if need > free0:
            minfo.update(status="skipped", reason=f"does not fit: weights {cfg.weight_bytes() / P.GiB:.1f} GiB + margin > free {free0 / P.GiB:.1f} GiB")
            self.doc["models"].append(minfo)
            self.doc["skipped"].append(dict(suite=suite.name, model=name, phase=None, reason=minfo["reason"]))
            log(f"model {suite.name}/{name}: SKIPPED ({minfo['reason']})")
            return
        # rotary tables for the longest position of the suite's grid (8192 + 128 for the dense grid)
        max_positions = P.round_up(suite.max_length(cfg, self.args.quick), 64) + 64
        minfo["max_positions"] = max_positions
        log(f"model {suite.name}/{name}: {cfg.param_count() / 1e9:.2f} B params, linear layers {cfg.linear_dtype}, "
            f"{cfg.weight_bytes() / P.GiB:.1f} GiB, allocation {allocation_s:.0f} s")
        try:
            model = RefDecoder(cfg, device="cuda", max_positions=max_positions)
            torch.cuda.synchronize()
            torch.cuda.empty_cache()  # the FP8 variant's quantization temporaries, so free memory is what it is
        except torch.cuda.OutOfMemoryError as e:
            minfo.update(status="skipped", reason=f"out of memory while loading: {e}"[:300])
            self.doc["models"].append(minfo)
            gc.collect()
            torch.cuda.empty_cache()
            return
        load_s = time.perf_counter() - t_model
        free1, _ = torch.cuda.mem_get_info()
        minfo.update(load_s=load_s, free_bytes_after_load=free1, status="measured")
        self.doc["models"].append(minfo)

        # kernels launched by one eager decode step and one small prefill (torch.profiler;
        # its first start costs ~6 s, kept out of the model's time allocation)
        t_prof = time.perf_counter()
        try:
            from validation.harness import gpu as G

            kc, vc = model.new_cache(1, 256)
            t1 = model.random_tokens(1)
            t128 = model.random_tokens(1, 128)
            model.decode(t1, 128, kc, vc)
            minfo["kernels_decode_step"] = G.count_kernels(lambda: model.decode(t1, 128, kc, vc))
            minfo["kernels_prefill_1x128"] = G.count_kernels(lambda: model.prefill(t128, kc, vc))
            log(f"  kernels: decode step {minfo['kernels_decode_step']['total']}, prefill {minfo['kernels_prefill_1x128']['total']}"
                f" ({cfg.kernels_per_layer()} per layer expected)")
            del kc, vc
        except Exception as e:
            minfo["kernels_error"] = f"{type(e).__name__}: {e}"[:300]
            log(f"  kernel count failed: {minfo['kernels_error']}")
        t_model += time.perf_counter() - t_prof
        pts, mem_skipped = P.plan_model(cfg, self.gp, free1, self.args.quick, suite)
        precision = point_precision(suite, cfg)
        for s in mem_skipped:
            self.doc["skipped"].append(dict(precision, model=name, **s))
        pdicts = [dict(phase=p.phase, batch=p.batch, prompt_len=p.length if p.phase == "prefill" else None,
                       context_len=p.length if p.phase == "decode" else None, _p=p) for p in pts]
        chosen = P.pick_energy_points(pdicts, n_energy)
        chosen_ids = {id(d["_p"]) for d in chosen}
        order = [d["_p"] for d in chosen] + sorted([p for p in pts if id(p) not in chosen_ids], key=lambda p: p.est_cost_s)
        spent = load_s
        n_done = 0
        for p in order:
            want_energy = id(p) in chosen_ids
            est = (p.est_cost_s + (P.cost_energy_point() if want_energy else 0.0)) * self.calib
            key = dict(precision, model=name, phase=p.phase, batch=p.batch)
            key["prompt_len" if p.phase == "prefill" else "context_len"] = p.length
            if est > self.left():
                self.doc["skipped"].append(dict(key, reason=f"time budget: run deadline (est {est:.1f} s, {self.left():.1f} s left)"))
                continue
            if spent + est > allocation_s and n_done >= 2:
                self.doc["skipped"].append(dict(key, reason=f"time budget: model allocation {allocation_s:.0f} s (est {est:.1f} s)"))
                continue
            t_pt = time.perf_counter()
            torch.cuda.reset_peak_memory_stats()
            failed = False
            try:
                if p.phase == "prefill":
                    res, en = self._prefill(model, p.batch, p.length, want_energy)
                else:
                    res, en = self._decode(model, p.batch, p.length, want_energy)
            except Exception as e:
                failed = True
                oom = isinstance(e, torch.cuda.OutOfMemoryError)
                self.doc["skipped" if oom else "errors"].append(dict(key, reason=("out of memory: " if oom else "") + f"{type(e).__name__}: {e}"[:500],
                                                                     traceback=None if oom else traceback.format_exc()[-2000:]))
                log(f"  {p.phase} B={p.batch} L={p.length}: {'OOM' if oom else 'ERROR'} {type(e).__name__}: {str(e)[:200]}")
            if failed:  # outside the except block, so that the failed frame's tensors are released
                gc.collect()
                torch.cuda.empty_cache()
                spent = time.perf_counter() - t_model
                continue
            wall = time.perf_counter() - t_pt
            spent = time.perf_counter() - t_model
            n_done += 1
            self.calib_actual += wall
            self.calib_est += p.est_cost_s + (P.cost_energy_point() if want_energy else 0.0)
            rec = dict(key, tokens=p.batch * p.length if p.phase == "prefill" else p.batch, **res,
                       est_latency_s=p.est_latency_s, est_cost_s=p.est_cost_s, point_wall_s=wall,
                       peak_memory_bytes=torch.cuda.max_memory_allocated())
            self.doc["points"].append(rec)
            msg = f"  {p.phase:7s} B={p.batch:<4d} {'S' if p.phase == 'prefill' else 'C'}={p.length:<5d} {res['latency_median_s'] * 1e3:9.3f} ms (est {p.est_latency_s * 1e3:8.3f}) wall {wall:5.2f} s"
            if en is not None:
                er = dict(key, latency_median_s=res["latency_median_s"], **en)
                idle = self.env.get("idle_power", {}).get("idle_power_w")
                if idle is not None and en.get("energy_per_call_j") is not None:
                    er["idle_power_w"] = idle
                    er["dynamic_energy_per_call_j"] = en["energy_per_call_j"] - idle * en["time_per_call_s"]
                self.doc["energy"].append(er)
                msg += f" | energy {en.get('energy_per_call_j') or float('nan'):.4f} J/call, {en.get('power_mean_w') or float('nan'):.0f} W"
            log(msg)
            self.flush()
            torch.cuda.empty_cache()
        minfo["time_s"] = time.perf_counter() - t_model
        minfo["points_measured"] = n_done
        del model
        gc.collect()
        torch.cuda.empty_cache()
        self.flush()
        log(f"model {suite.name}/{name}: {n_done} points in {minfo['time_s']:.1f} s (calibration actual/est {self.calib:.2f})")
