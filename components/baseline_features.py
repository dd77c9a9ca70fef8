"""Sample windows -> one pandas row per candidate, the input of the baseline suite (``components.baselines``).

A sample (DESIGN §4.3) is one (user, window) row: contextual ids, a history strictly before the window
(``uih`` ids, ``uih_action`` bitmasks) and the window's candidates (``candidate`` ids, query times,
``item_action_weight`` label bitmasks). Each candidate becomes one row carrying what a static model may use:
its user, item, contextual ids, hour and position, and counts over its sample's history (length, positives
per task overall and over the last ``RECENT`` events, whether the item is in it). Nothing here looks at a
candidate's label except the ``label`` column itself.

Also the smoothed rates the baselines share: ``(pos + a * prior) / (n + a)``, and leave-one-window-out
counts per key (item, user) so that a training row's rate never includes its own window's labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from components.config import PipelineConfig
from components.loader import sample_files
from hstu_model.batch import GROUP_COLUMN, LABEL_COLUMN
from hstu_model.config import TaskConfig

RECENT = 20  # the "last events" of the history that the recent rate counts


def _jagged(table: pa.Table, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(values [sum lengths], lengths int64 [R]) of a list column; a missing column is named."""
    if name not in table.column_names:
        raise ValueError(f"sample rows lack column {name!r} (DESIGN §4.3); columns: {table.column_names}")
    col = table.column(name).combine_chunks()
    lengths = np.asarray(col.value_lengths().fill_null(0).to_numpy(zero_copy_only=False), np.int64)
    return np.asarray(col.flatten().to_numpy(zero_copy_only=False)), lengths


def _read_window(config: PipelineConfig, window: date) -> pa.Table:
    g = config.model.feature_groups
    cols = list(dict.fromkeys([GROUP_COLUMN, *g.contextual, g.uih[0], g.uih_action[0], g.candidate[0],
                               g.candidate_timestamp[0], LABEL_COLUMN]))
    tables = [pq.read_table(f, columns=cols) for f in sample_files(config.data.work_dir, [window])]
    return pa.concat_tables(tables, promote_options="permissive")


def _history_counts(items: np.ndarray, actions: np.ndarray, lengths: np.ndarray,
                    tasks: Sequence[TaskConfig]) -> dict[str, np.ndarray]:
    """Per sample counts over its history ``items/actions [U]``, ``lengths [R]`` -> arrays [R]."""
    rows = len(lengths)
    sample = np.repeat(np.arange(rows), lengths)  # [U]
    ends = np.cumsum(lengths)
    recent = (np.repeat(ends, lengths) - 1 - np.arange(len(items))) < RECENT  # [U]; the history is ascending
    out = {"hist_len": lengths, "recent_len": np.bincount(sample, weights=recent, minlength=rows).astype(np.int64)}
    for t in tasks:
        hit = (actions.astype(np.int64) & t.task_bitmask) != 0
        out[f"hist_pos_{t.task_name}"] = np.bincount(sample, weights=hit, minlength=rows).astype(np.int64)
        out[f"recent_pos_{t.task_name}"] = np.bincount(sample, weights=hit & recent, minlength=rows).astype(np.int64)
    return out


def _window_frame(config: PipelineConfig, window: date, first_sample: int) -> pd.DataFrame:
    """The candidate rows of one window; samples numbered from ``first_sample``."""
    g = config.model.feature_groups
    table = _read_window(config, window)
    rows = table.num_rows
    hist_items, hist_len = _jagged(table, g.uih[0])
    actions, _ = _jagged(table, g.uih_action[0])
    items, cand_len = _jagged(table, g.candidate[0])
    times, _ = _jagged(table, g.candidate_timestamp[0])
    labels, _ = _jagged(table, LABEL_COLUMN)
    sample = np.repeat(np.arange(rows), cand_len)  # [C]: the row of each candidate
    starts = np.cumsum(cand_len) - cand_len
    frame = pd.DataFrame({"window": window.toordinal(), "sample": first_sample + sample,
                          "item": items.astype(np.int64), "label": labels.astype(np.int64),
                          "position": np.arange(len(items)) - np.repeat(starts, cand_len),
                          "hour": (times.astype(np.int64) // 3600) % 24})
    for name in dict.fromkeys([GROUP_COLUMN, *g.contextual]):
        frame[name] = table.column(name).to_numpy()[sample].astype(np.int64)
    for name, values in _history_counts(hist_items, actions, hist_len, config.model.tasks).items():
        frame[name] = values[sample]
    seen = pd.DataFrame({"sample": first_sample + np.repeat(np.arange(rows), hist_len),
                         "item": hist_items.astype(np.int64)}).drop_duplicates()
    frame["in_history"] = (frame[["sample", "item"]].merge(seen, how="left", indicator=True)["_merge"]
                           == "both").to_numpy().astype(np.int64)
    return frame


def candidate_frame(config: PipelineConfig, windows: Sequence[date]) -> pd.DataFrame:
    """One row per candidate of the windows' samples, in window then file order.

    Columns (all int64): ``window`` (date ordinal), ``sample`` (running sample number), ``item``, ``label``
    (action bitmask), ``position`` (index among its sample's candidates), ``hour`` (UTC hour of the query
    time), ``user_id`` and each contextual feature, ``hist_len``, ``recent_len`` (history events among the
    last ``RECENT``), per task ``hist_pos_<task>`` and ``recent_pos_<task>``, ``in_history`` (0/1).

    Raises:
        FileNotFoundError: a window has no sample partition. ValueError: a sample column is missing.
    """
    frames, first = [], 0
    for window in windows:
        frame = _window_frame(config, window, first)
        first = int(frame["sample"].max()) + 1 if len(frame) else first
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def task_labels(frame: pd.DataFrame, tasks: Sequence[TaskConfig]) -> np.ndarray:
    """0/1 labels float64 [N, T] from the ``label`` bitmask, in task order."""
    masks = np.array([t.task_bitmask for t in tasks], dtype=np.int64)
    return ((frame["label"].to_numpy()[:, None] & masks[None, :]) != 0).astype(np.float64)


def smoothed(pos: np.ndarray, n: np.ndarray, prior: float, strength: float) -> np.ndarray:
    """``(pos + strength * prior) / (n + strength)``: the prior for n = 0, the raw rate as n grows."""
    return (np.asarray(pos, np.float64) + strength * prior) / (np.asarray(n, np.float64) + strength)


def history_prior(frame: pd.DataFrame, task: str) -> float:
    """The task's pooled rate over the history events of the frame's samples (each sample counted once)."""
    samples = frame.drop_duplicates("sample")
    events = int(samples["hist_len"].sum())
    return float(samples[f"hist_pos_{task}"].sum()) / events if events else 0.0


def history_rate(frame: pd.DataFrame, task: str, prior: float, strength: float, recent: bool = False
                 ) -> np.ndarray:
    """float64 [N]: each row's smoothed rate of the task among its history (or its last ``RECENT`` events)."""
    kind = "recent" if recent else "hist"
    return smoothed(frame[f"{kind}_pos_{task}"], frame[f"{kind}_len"], prior, strength)


def out_of_window_counts(train: pd.DataFrame, y: np.ndarray, key: str, eval_keys: pd.Series
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Positives and rows per ``key`` value over the training rows, leaving each training row's window out.

    Args:
        train: rows with ``key`` and ``window``; y: float64 [N] 0/1 labels of those rows.
        eval_keys: [M] key values of the rows to score, counted over all training rows.
    Returns:
        (train_pos [N], train_n [N], eval_pos [M], eval_n [M]) float64: a training row's counts exclude the
        rows of its own window (so its rate carries no target leak); unseen eval keys get 0.
    """
    df = pd.DataFrame({"k": train[key].to_numpy(), "w": train["window"].to_numpy(), "y": y})
    by_key, by_window = df.groupby("k")["y"], df.groupby(["k", "w"])["y"]
    train_pos = (by_key.transform("sum") - by_window.transform("sum")).to_numpy(np.float64)
    train_n = (by_key.transform("count") - by_window.transform("count")).to_numpy(np.float64)
    totals = by_key.agg(["sum", "count"])
    eval_pos = eval_keys.map(totals["sum"]).fillna(0.0).to_numpy(np.float64)
    eval_n = eval_keys.map(totals["count"]).fillna(0.0).to_numpy(np.float64)
    return train_pos, train_n, eval_pos, eval_n
