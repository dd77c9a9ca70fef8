"""Pandas reference of the sample builder: the same semantics as ``samples.py``, plain and obviously correct.

It works on events already in memory (KuaiRand columns plus the partition date ``dt``), recomputes history from
all events every time (no state), and is meant for tests on small logs: Spark and this reference must agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd

from components.config import ACTIONS
from components.data.sample_names import ITEM_COUNTS_COLUMN, SampleNames
from components.id_features import MISSING_SIDE_VALUE

_DAY_MS = 86_400_000


def _ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


def canonical_ref(raw: pd.DataFrame) -> pd.DataFrame:
    """KuaiRand-column events (+ ``dt``) -> user_id, video_id, time_ms, action_weight, play_time_ms, duration_ms, dt.

    Missing flag columns count as 0; numbers stay float where a value is missing (NaN).
    """
    weight = np.zeros(len(raw), dtype=np.int64)
    for bit, action in enumerate(ACTIONS):
        if action in raw.columns:
            weight |= (raw[action].fillna(0).to_numpy() != 0).astype(np.int64) << bit
    out = raw[["user_id", "video_id", "time_ms", "play_time_ms", "duration_ms", "dt"]].copy()
    out["action_weight"] = weight
    return out


def reasons_ref(events: pd.DataFrame) -> pd.Series:
    """The quality reason of each canonical event (None for a good one); rules as in ``quality.py``."""
    reasons = pd.Series([None] * len(events), index=events.index, dtype=object)
    day_start = events["dt"].map(lambda d: _ms(d) if d is not None else np.nan)
    checks = [
        ("null_id", events["user_id"].isna() | events["video_id"].isna()),
        ("negative_id", (events["user_id"] < 0) | (events["video_id"] < 0)),
        ("null_time", events["time_ms"].isna()),
        ("time_out_of_range", (events["time_ms"] < day_start) | (events["time_ms"] >= day_start + _DAY_MS)),
        ("null_duration", events["play_time_ms"].isna() | events["duration_ms"].isna()),
        ("negative_duration", (events["play_time_ms"] < 0) | (events["duration_ms"] < 0)),
    ]
    for reason, bad in checks:
        reasons[bad & reasons.isna()] = reason
    good = events[reasons.isna()].sort_values(["user_id", "video_id", "time_ms", "play_time_ms", "duration_ms",
                                               "action_weight"], kind="stable")
    dup = good.duplicated(["user_id", "video_id", "time_ms"], keep="first")
    reasons[dup[dup].index] = "duplicate"
    return reasons


def build_samples_ref(raw: pd.DataFrame, contextual: pd.DataFrame | None, *, window_start: date,
                      window_days: int, max_uih_len: int, max_candidates: int,
                      names: SampleNames | None = None, query_time: bool = False,
                      side_values: Mapping[int, int] | None = None, item_counter_days: int = 0) -> pd.DataFrame:
    """Samples of the window ``[window_start, window_start + window_days)`` from in-memory events.

    Args:
        raw: events of every day (KuaiRand columns, ``dt`` a ``date``), bad rows included.
        contextual: [user_id, *names.contextual[1:]] int ids, or None (every contextual id 0).
        query_time: the history lists continue with the candidates' own events (``history_mode: QUERY_TIME``).
        side_values: video id -> its side feature's value, for ``names.side_feature`` (a missing video:
            ``MISSING_SIDE_VALUE``).
        item_counter_days: > 0 adds ``item_counts`` (``components.data.item_counters``): per candidate, its
            video's clean events by every user in the days before it, and those with each action bit.
    Returns:
        one row per user with a clean event in the window, sorted by user_id; list columns as Python lists.
    """
    names = names or SampleNames()
    events = canonical_ref(raw)
    events = events[reasons_ref(events).isna()].sort_values(["user_id", "time_ms", "video_id"])
    lo, hi = _ms(window_start), _ms(window_start + timedelta(days=window_days))
    ctx_columns = [c for c in names.contextual if c != "user_id"]
    by_user = ({} if contextual is None else
               {int(r["user_id"]): r for r in contextual.drop_duplicates("user_id").to_dict("records")})
    rows = []
    for user, group in events.groupby("user_id", sort=True):
        inside = group[(group["time_ms"] >= lo) & (group["time_ms"] < hi)]
        if inside.empty:
            continue
        hist = group[group["time_ms"] < lo].tail(max_uih_len)
        cand = inside.head(max_candidates)
        if query_time:
            hist = pd.concat([hist, cand])
        row = {"user_id": int(user)}
        for c in ctx_columns:
            row[c] = int(by_user[user][c]) if user in by_user else 0
        row[names.video_id] = hist["video_id"].astype(np.int64).tolist()
        row[names.action_weight] = hist["action_weight"].astype(np.int64).tolist()
        row[names.watch_time] = (hist["play_time_ms"] / 1000.0).tolist()
        row[names.action_timestamp] = (hist["time_ms"].astype(np.int64) // 1000).tolist()
        row[names.item_video_id] = cand["video_id"].astype(np.int64).tolist()
        row[names.item_query_time] = (cand["time_ms"].astype(np.int64) // 1000).tolist()
        row[names.item_action_weight] = cand["action_weight"].astype(np.int64).tolist()
        row[names.item_watch_time] = (cand["play_time_ms"] / 1000.0).tolist()
        if names.side_feature:
            value = (side_values or {}).get
            row[names.side_feature] = [value(int(v), MISSING_SIDE_VALUE) for v in hist["video_id"]]
            row[names.item_side_feature] = [value(int(v), MISSING_SIDE_VALUE) for v in cand["video_id"]]
        if item_counter_days:
            row[ITEM_COUNTS_COLUMN] = [_item_counts(events, int(v), int(t), item_counter_days)
                                       for v, t in zip(cand["video_id"], cand["time_ms"], strict=True)]
        rows.append(row)
    columns = ["user_id", *ctx_columns, names.video_id, names.action_weight, names.watch_time,
               names.action_timestamp, names.item_video_id, names.item_query_time, names.item_action_weight,
               names.item_watch_time]
    if names.side_feature:
        columns += [names.side_feature, names.item_side_feature]
    if item_counter_days:
        columns.append(ITEM_COUNTS_COLUMN)
    return pd.DataFrame(rows, columns=columns)


def _item_counts(events: pd.DataFrame, video: int, time_ms: int, days: int) -> list[int]:
    """[events, events with each action bit] of ``video`` by any user in ``[time_ms - days, time_ms)``."""
    seen = events[(events["video_id"] == video) & (events["time_ms"] >= time_ms - days * _DAY_MS)
                  & (events["time_ms"] < time_ms)]
    bits = seen["action_weight"].to_numpy(np.int64)
    return [len(seen), *(int(((bits >> b) & 1).sum()) for b in range(len(ACTIONS)))]
