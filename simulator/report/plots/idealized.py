"""`llmsim idealized --plot`: runtime per query against model size (the seed paper's
runtime-vs-capability comparison, with size standing in for capability), log-log: the
idealized runtime T(p_ref, o) and the cost-aware one (x devices), one point per model."""
from __future__ import annotations

from pathlib import Path

from simulator.explore.idealized import reference_prompt
from simulator.report.plots import plain_log_ticks, pyplot, save


def draw(rows, path: Path, title: str):
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
    shown = [r for r in rows if r.runtime_s is not None]
    for ax, label, values in ((axes[0], "idealized runtime T(p, o) (s)", lambda r, i: r.runtime_s[i]),
                              (axes[1], "accelerator-seconds per query", lambda r, i: r.accelerator_s[i])):
        for n, r in enumerate(sorted(shown, key=lambda r: r.params)):
            i = r.prompts.index(reference_prompt(r.prompts))
            ax.scatter(r.params / 1e9, values(r, i), color="#1b9e77", zorder=3)
            ax.annotate(f"{r.model} x{r.devices}", (r.params / 1e9, values(r, i)), xytext=(5, 3 if n % 2 else -9),
                        textcoords="offset points", fontsize=7)
        ax.set_xscale("log")
        ax.set_yscale("log")
        sizes = [r.params for r in shown] or [1.0]
        plain_log_ticks(ax.xaxis, max(sizes) / min(sizes))
        ys = [values(r, r.prompts.index(reference_prompt(r.prompts))) for r in shown] or [1.0]
        plain_log_ticks(ax.yaxis, max(ys) / min(ys))
        ax.set_xlabel("parameters (billions)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    if shown:
        r = shown[0]
        fig.suptitle(f"{title}: prompt {reference_prompt(r.prompts)}, output {r.output}", fontsize=10)
    fig.tight_layout()
    return save(fig, path)
