"""Sample windows -> one pandas row per candidate, the input of the baseline suite (``components.baselines.suite``).

A sample (docs/design.md §4.3) is one (user, window) row: contextual ids, a history strictly before the window
(``uih`` ids, ``uih_action`` bitmasks) and the window's candidates (``candidate`` ids, query times,
``item_action_weight`` label bitmasks). Each candidate becomes one row carrying what a static model may use:
its user, item, contextual ids, hour and position, and counts over the history it may see (length, positives
per task overall and over the last ``RECENT`` events, whether the item is in it): the sample's history, and with
query-time history (``data_config.history_mode``) also the window's events before the candidate's own. Nothing here looks at a
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
from components.data.windows import sample_files
from hstu_model.batch import GROUP_COLUMN, ITEM_COUNTS_COLUMN, LABEL_COLUMN
from hstu_model.config import TaskConfig
from hstu_model.item_counters import ACTION_BITS

RECENT = 20  # the "last events" of the history that the recent rate counts


def _jagged(table: pa.Table, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(values [sum lengths], lengths int64 [R]) of a list column; a missing column is named."""
    if name not in table.column_names:
        raise ValueError(f"sample rows lack column {name!r} (docs/design.md §4.3); columns: {table.column_names}")
    col = table.column(name).combine_chunks()
    lengths = np.asarray(col.value_lengths().fill_null(0).to_numpy(zero_copy_only=False), np.int64)
    return np.asarray(col.flatten().to_numpy(zero_copy_only=False)), lengths


def _read_window(config: PipelineConfig, window: date) -> pa.Table:
    g = config.model.feature_groups
    cols = list(dict.fromkeys([GROUP_COLUMN, *g.contextual, g.uih[0], g.uih_action[0], g.candidate[0],
                               g.candidate_timestamp[0], LABEL_COLUMN]))
    if config.data.item_counter_days:
        cols.append(ITEM_COUNTS_COLUMN)
    tables = [pq.read_table(f, columns=cols) for f in sample_files(config.data.work_dir, [window])]
    return pa.concat_tables(tables, promote_options="permissive")


def _exclusive_cumsum(x: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(S [sum lengths + 1], starts [R]): ``S[starts[r] + i]`` counts ``x`` over the first ``i`` values of row r."""
    return np.concatenate([[0], np.cumsum(x, dtype=np.int64)]), np.cumsum(lengths) - lengths


def _visible_counts(items: np.ndarray, actions: np.ndarray, lengths: np.ndarray, candidates: np.ndarray,
                    sample: np.ndarray, visible: np.ndarray, tasks: Sequence[TaskConfig]) -> dict[str, np.ndarray]:
    """Counts over the history each candidate may see: the first ``visible`` events of its sample's history.

    Args:
        items, actions: [U] history of every sample, ascending; lengths int64 [R]; candidates [C] item ids;
            sample int64 [C] the row of each candidate; visible int64 [C] how many of its row's history
            events the candidate sees.
    Returns:
        column -> int64 [C]: ``hist_len``, ``recent_len`` (of the last ``RECENT`` visible events), per task
        ``hist_pos_<task>`` and ``recent_pos_<task>``, and ``in_history`` (its item among the visible events).
    """
    first = np.maximum(visible - RECENT, 0)
    out = {"hist_len": visible, "recent_len": visible - first}
    for t in tasks:
        hit = (actions.astype(np.int64) & t.task_bitmask) != 0
        cum, starts = _exclusive_cumsum(hit, lengths)
        end, begin = cum[starts[sample] + visible], cum[starts[sample] + first]
        out[f"hist_pos_{t.task_name}"] = end - cum[starts[sample]]
        out[f"recent_pos_{t.task_name}"] = end - begin
    # The first position of each (sample, item) in the history: seen when it lies before the visible end.
    rows = np.repeat(np.arange(len(lengths)), lengths)
    position = np.arange(len(items)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    firsts = pd.DataFrame({"sample": rows, "item": items.astype(np.int64), "pos": position}) \
        .groupby(["sample", "item"])["pos"].min()
    cand = pd.MultiIndex.from_arrays([sample, candidates.astype(np.int64)])
    seen_at = firsts.reindex(cand).to_numpy()
    out["in_history"] = (np.nan_to_num(seen_at, nan=np.inf) < visible).astype(np.int64)
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
    visible = hist_len[sample]
    if config.data.query_time:  # the history ends with the candidates' own events: c sees those before it
        if np.any(hist_len < cand_len):
            raise ValueError(f"window {window}: a query-time sample has fewer history events than candidates; "
                             "build its samples again with data_config.history_mode: QUERY_TIME")
        visible = (hist_len - cand_len)[sample] + frame["position"].to_numpy()
    counts = _visible_counts(hist_items, actions, hist_len, items, sample, visible, config.model.tasks)
    if config.data.item_counter_days:
        counts.update(_item_counts(table, len(items), config.model.tasks))
    for name, values in counts.items():
        frame[name] = values
    return frame


def _item_counts(table: pa.Table, candidates: int, tasks: Sequence[TaskConfig]) -> dict[str, np.ndarray]:
    """``item_n`` and per single-bit task ``item_pos_<task>``: the candidates' item counters (int64 [C])."""
    col = table.column(ITEM_COUNTS_COLUMN).combine_chunks().flatten()
    values = np.asarray(col.flatten().to_numpy(zero_copy_only=False), np.int64)
    if len(values) != candidates * (1 + ACTION_BITS):
        raise ValueError(f"column {ITEM_COUNTS_COLUMN!r} has {len(values)} counts for {candidates} candidates; "
                         f"expected {1 + ACTION_BITS} per candidate")
    counts = values.reshape(candidates, 1 + ACTION_BITS)
    out = {"item_n": counts[:, 0]}
    for t in tasks:
        if t.task_bitmask > 0 and t.task_bitmask & (t.task_bitmask - 1) == 0:  # one action bit: counted exactly
            out[f"item_pos_{t.task_name}"] = counts[:, t.task_bitmask.bit_length()]
    return out



def candidate_frame(config: PipelineConfig, windows: Sequence[date]) -> pd.DataFrame:
    """One row per candidate of the windows' samples, in window then file order.

    Columns (all int64): ``window`` (date ordinal), ``sample`` (running sample number), ``item``, ``label``
    (action bitmask), ``position`` (index among its sample's candidates), ``hour`` (UTC hour of the query
    time), ``user_id`` and each contextual feature, ``hist_len``, ``recent_len`` (history events among the
    last ``RECENT``), per task ``hist_pos_<task>`` and ``recent_pos_<task>``, ``in_history`` (0/1); with
    ``data_config.item_counter_days`` also the item counters ``item_n`` and ``item_pos_<task>`` (tasks of one
    action bit).

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
