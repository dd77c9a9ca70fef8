"""Statistics of one window's samples, computed in one Spark aggregation (only numbers reach the driver).

The sample builder adds the quality counts and writes the result to ``{work_dir}/stats/dt=YYYY-MM-DD.json``;
the trainer logs it to MLflow.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from hstu_model.config import TaskConfig

PERCENTILES = (0.0, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0)
# percentile_approx accuracy: relative rank error 1/ACCURACY; exact for fewer than ACCURACY distinct lengths.
ACCURACY = 10_000


def _lengths(values: list | None) -> dict[str, float]:
    if values is None:
        return {f"p{round(q * 100)}": 0 for q in PERCENTILES}
    return {f"p{round(q * 100)}": int(v) for q, v in zip(PERCENTILES, values)}


def _has_bits(mask: int):
    # Spark reads a lambda's arity (x) vs (x, i): bind the mask in a closure, not a default argument.
    return lambda x: x.bitwiseAND(F.lit(mask)) > 0


def window_stats(samples: DataFrame, *, names, tasks: Sequence[TaskConfig]) -> dict:
    """Counts, length percentiles and label rates of a window's samples.

    Args:
        samples: the window's samples (``samples.window_samples`` output, or the written partition).
        names: ``samples.SampleNames`` of the columns.
        tasks: the model's tasks; a candidate is positive for a task when ``(item_action_weight & bitmask) > 0``.
    Returns:
        {"samples", "users", "candidates", "history_events", "history_length": {p0..p100, mean},
         "candidates_per_sample": {p0..p100, mean}, "users_without_history", "label_rates": {task: rate}}.
    """
    hist_len = F.size(names.video_id)
    cand_len = F.size(names.item_video_id)
    label = names.item_action_weight
    # No countDistinct here: mixed with percentile_approx, Spark's distinct rewrite builds one percentile digest
    # per user (30 s instead of 1 s at 100k users); users are counted in a pass of their own.
    aggs = [F.count(F.lit(1)).alias("samples"), F.sum(cand_len).alias("candidates"), F.sum(hist_len).alias("history_events"),
            F.sum(F.when(hist_len == 0, 1).otherwise(0)).alias("no_history"),
            F.percentile_approx(hist_len, list(PERCENTILES), ACCURACY).alias("hist_p"),
            F.percentile_approx(cand_len, list(PERCENTILES), ACCURACY).alias("cand_p"),
            F.avg(hist_len).alias("hist_mean"), F.avg(cand_len).alias("cand_mean")]
    for i, task in enumerate(tasks):
        aggs.append(F.sum(F.size(F.filter(label, _has_bits(task.task_bitmask)))).alias(f"pos{i}"))
    row = samples.agg(*aggs).first()
    candidates = int(row["candidates"] or 0)
    return {
        "samples": int(row["samples"]),
        "users": samples.select("user_id").distinct().count(),
        "candidates": candidates,
        "history_events": int(row["history_events"] or 0),
        "users_without_history": int(row["no_history"] or 0),
        "history_length": {**_lengths(row["hist_p"]), "mean": float(row["hist_mean"] or 0.0)},
        "candidates_per_sample": {**_lengths(row["cand_p"]), "mean": float(row["cand_mean"] or 0.0)},
        "label_rates": {t.task_name: (int(row[f"pos{i}"] or 0) / candidates) if candidates else 0.0
                        for i, t in enumerate(tasks)},
    }
