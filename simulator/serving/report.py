"""The serving runs as a text table: one column per run (rate, concurrency or trace), one
row per quantity; a saturated run's latencies are marked (they grow with the run's length)."""
from __future__ import annotations

from simulator.report.table import number, quantity, render

LATENCIES = (("ttft_s", "TTFT"), ("tpot_s", "TPOT"), ("itl_s", "ITL"), ("e2e_s", "e2e"))


def _label(m: dict) -> str:
    if m["rate"] is not None:
        return f"{m['rate']:.4g}/s"
    return f"{m['concurrency']} clients" if m["concurrency"] else "trace"


def table(title: str, runs: list[dict], notes: tuple[str, ...] = ()) -> str:
    """``runs``: each run's metrics (serving.simulate.Run.metrics)."""
    rows = []
    for key, name in LATENCIES:
        for stat in ("p50", "p90", "p99", "mean"):
            cells = []
            for m in runs:
                text = quantity(m[key][stat], "s")
                cells.append(f"{text}*" if m["saturated"] and key in ("ttft_s", "e2e_s") and text != "n/a" else text)
            rows.append([f"{name} {stat}", *cells])
    rows += [
        ["requests/s", *(number(m["requests_per_s"], ".3g") for m in runs)],
        ["output tokens/s", *(number(m["output_tokens_per_s"], ".4g") for m in runs)],
        ["goodput requests/s", *(number(m["goodput_requests_per_s"], ".3g") for m in runs)],
        ["saturated", *("yes" if m["saturated"] else "no" for m in runs)],
        ["completed / rejected", *(f"{m['completed']} / {m['rejected']}" for m in runs)],
        ["preemptions", *(str(m["preemptions"]) for m in runs)],
        ["KV peak (of pool)", *(number(100 * m["kv_peak_fraction"], ".1f") + "%" for m in runs)],
        ["energy / request", *(quantity(m["energy_j_per_request"], "J") for m in runs)],
        ["tokens/J", *(number(m["tokens_per_j"], ".3g") for m in runs)],
        ["$ / M tokens", *(number(m["usd_per_million_tokens"], ".3g") for m in runs)],
    ]
    text = [title, "", render(["metric", *(_label(m) for m in runs)], rows)]
    if any(m["saturated"] for m in runs):
        text.append("* saturated: the queue grows over the run; these latencies depend on its length")
    text += [f"note: {n}" for n in notes]
    return "\n".join(text)
