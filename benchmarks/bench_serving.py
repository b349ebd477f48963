"""Speed of the serving simulation: 100,000 requests of llama-3.1-8b on an H100 (prompts
uniform 128-2048, outputs uniform 16-512, Poisson at three rates: light, busy, saturated)
through the numba loop (serving/loop.py), against the plain-Python scheduler loop of the
same policy (serving/reference.py: policy.Scheduler, the same iteration kernel, Python per
iteration) on the first 2,000 of them, measured in the same run. Prints requests and
iterations per second of each and the ratio, the loop's wall and CPU seconds (median, min,
max of the repeats: CPU time is the loop's own cost on a machine other processes share). Target (issue 16): 100,000 requests < 1 s."""
from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

REQUESTS, PEER_REQUESTS = 100_000, 2_000
RATES = (5.0, 20.0, 60.0)          # requests/s: light, busy, past saturation


def main(repeats: int = 5) -> None:
    from simulator.serving import reference
    from simulator.serving.policy import Policy
    from simulator.serving.requests import Lengths, generate
    from simulator.serving.simulate import engine, serve

    policy = Policy()
    eng = engine("llama-3.1-8b", "h100-sxm", "pytorch-ref", policy)
    serve(eng, generate(100, 1.0, Lengths("fixed", 128), Lengths("fixed", 4), 1), 1.0)     # numba cache warm
    print(f"cpu cores: {os.cpu_count()}; llama-3.1-8b on h100-sxm, pytorch-ref, {policy}")
    for rate in RATES:
        reqs = generate(REQUESTS, rate, Lengths("uniform", 128, 2048), Lengths("uniform", 16, 512), seed=1)
        times, cpu = [], []
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            run = serve(eng, reqs, rate)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        fast = statistics.median(times)
        iterations = run.metrics["iterations"]
        few = reqs.subset(slice(0, PEER_REQUESTS))
        t0 = time.perf_counter()
        ref = reference.run(eng.model, policy, few.arrival_s, few.prompt, few.output, few.prefix, eng.pool_blocks,
                            host=eng.host)
        slow = time.perf_counter() - t0
        peer_per_s = PEER_REQUESTS / slow
        print(f"rate {rate:g}/s ({'saturated' if run.metrics['saturated'] else 'stable'}): numba loop "
              f"{REQUESTS:,} requests in {fast:.3f} s (min {min(times):.3f}, max {max(times):.3f}; CPU median "
              f"{statistics.median(cpu):.3f} s, min {min(cpu):.3f}, max {max(cpu):.3f}; "
              f"{iterations:,} iterations, {iterations / fast / 1e6:.2f} M/s); plain-Python scheduler "
              f"{peer_per_s:,.0f} requests/s ({ref['iterations'] / slow:,.0f} iterations/s): "
              f"{REQUESTS / fast / peer_per_s:.0f}x")


if __name__ == "__main__":
    main()
