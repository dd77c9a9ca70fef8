"""Training report plots as matplotlib Figures (Agg canvas, no pyplot state): loss curve, per-task AUC bars
against the baselines and the oracle, sequence-length histogram. ``save_png`` writes one to disk; the
trainer also logs them to MLflow (``TrackedRun.log_figure``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure


def loss_curve(steps: Sequence[int], losses: Sequence[float], *, title: str = "training loss") -> Figure:
    """Loss per logged step (mean over the logging interval)."""
    fig = Figure(figsize=(6, 3.5))
    ax = fig.add_subplot()
    ax.plot(list(steps), list(losses), lw=1.2)
    ax.set(xlabel="step", ylabel="loss (sum of task BCE)", title=title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def auc_bars(model: Mapping[str, float], references: Mapping[str, Mapping[str, float]], *,
             title: str = "AUC per task on the evaluation window") -> Figure:
    """Grouped bars: per task, the model's AUC next to each reference (``{"oracle": {task: auc}, ...}``).

    Tasks missing from a reference are drawn as gaps; the 0.5 line marks chance.
    """
    tasks = list(model)
    series = {"model": model, **references}
    fig = Figure(figsize=(max(5.0, 1.4 * len(tasks) + 2), 3.8))
    ax = fig.add_subplot()
    width = 0.8 / len(series)
    x = np.arange(len(tasks))
    for i, (name, values) in enumerate(series.items()):
        heights = [values.get(t, np.nan) for t in tasks]
        bars = ax.bar(x + (i - (len(series) - 1) / 2) * width, heights, width, label=name)
        ax.bar_label(bars, fmt="%.3f", fontsize=7, padding=1)
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set_xticks(x, tasks)
    ax.set(ylabel="AUC", ylim=(0.4, 1.0), title=title)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    return fig


def length_histogram(lengths: np.ndarray, *, bins: int = 30, title: str = "tokens per sample") -> Figure:
    """Histogram of sample sequence lengths (contextual + history + candidates)."""
    fig = Figure(figsize=(6, 3.5))
    ax = fig.add_subplot()
    ax.hist(np.asarray(lengths), bins=bins)
    ax.set(xlabel="tokens", ylabel="samples", title=title)
    fig.tight_layout()
    return fig


def save_png(fig: Figure, path: Path) -> Path:
    """Writes ``fig`` as PNG (parent folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
