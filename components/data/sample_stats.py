"""Statistics of one window's samples, computed in one Spark aggregation (only numbers reach the driver).

The sample builder adds the quality counts and the id statistics (``id_counts`` then ``id_stats``: vocabulary
size, out-of-vocabulary and overflow rates, hash collisions) and writes the result to
``{work_dir}/stats/dt=YYYY-MM-DD.json``; the trainer logs it to MLflow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from components.data.id_vocab import TableVocab
from hstu_model.config import EmbeddingTableConfig, TaskConfig
from hstu_model.id_rows import stable_hash

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


def id_counts(samples: DataFrame, features: Sequence[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Occurrences of each distinct raw id of each id feature (list columns exploded) in the samples.

    Only the distinct ids and their counts reach the driver (a window's videos and users, not its events).
    Returns:
        feature -> (ids int64 [N] ascending, counts int64 [N]).
    """
    out = {}
    for feature in features:
        column = F.col(feature)
        if isinstance(samples.schema[feature].dataType, T.ArrayType):
            column = F.explode(column)
        rows = samples.select(column.alias("id")).groupBy("id").count().orderBy("id").collect()
        out[feature] = (np.array([r["id"] for r in rows], np.int64), np.array([r["count"] for r in rows], np.int64))
    return out


def id_stats(counts: Mapping[str, tuple[np.ndarray, np.ndarray]], tables: Sequence[EmbeddingTableConfig],
             vocab: Mapping[str, TableVocab], overflow: Mapping[str, np.ndarray], window: date) -> dict[str, dict]:
    """Per id feature: how its ids reach rows in this window (docs/design.md §4.3).

    Args:
        counts: ``id_counts`` of the window's samples. tables: the model's embedding tables.
        vocab: the vocabularies after this window was added. overflow: table -> ids that found it full.
        window: the window's start.
    Returns:
        feature -> {"table", "mapping" ("vocabulary" | "hash"), "rows", "distinct_ids", "occurrences", then for a
        vocabulary: "vocabulary_size", "unseen_ids" (distinct ids known to no earlier window), "oov_rate" (their
        share of the occurrences: what a model trained on earlier windows reads from row 0), "overflow_ids",
        "overflow_rate" (ids with no row at all); for a hash: "colliding_ids" (distinct ids whose row also holds
        another id of the table seen in this window), "collision_rate" (their share of the distinct ids)}.
    """
    table_of = {f: t for t in tables for f in t.feature_names}
    out = {}
    for feature, (ids, occurrences) in counts.items():
        t = table_of[feature]
        total = int(occurrences.sum())
        entry: dict = {"table": t.name, "mapping": "hash" if t.hashed else "vocabulary", "rows": t.num_embeddings,
                       "distinct_ids": int(len(ids)), "occurrences": total}
        if t.hashed:
            # Collisions within the table: history and candidates share video_id's rows.
            table_ids = np.unique(np.concatenate([counts[f][0] for f in t.feature_names if f in counts]))
            rows, per_row = np.unique(stable_hash(table_ids, t.num_embeddings), return_counts=True)
            crowded = rows[per_row > 1]
            colliding = int(np.isin(stable_hash(ids, t.num_embeddings), crowded).sum())
            entry.update(colliding_ids=colliding, collision_rate=colliding / len(ids) if len(ids) else 0.0)
        else:
            v = vocab.get(t.name, TableVocab())
            first = dict(zip(v.ids, v.first_seen))
            day = window.isoformat()
            unseen = np.array([first.get(i, day) >= day for i in ids.tolist()], bool)
            over = np.isin(ids, overflow.get(t.name, np.zeros(0, np.int64)))
            entry.update(vocabulary_size=len(v.ids), unseen_ids=int(unseen.sum()),
                         oov_rate=int(occurrences[unseen].sum()) / total if total else 0.0,
                         overflow_ids=int(over.sum()),
                         overflow_rate=int(occurrences[over].sum()) / total if total else 0.0)
        out[feature] = entry
    return out
