"""Per-user history state: each user's last ``max_uih_len`` clean events before a day, kept in Parquet.

``{work_dir}/history/v2/dt=D/`` holds, per user, the events strictly before day D (ascending by (time_ms,
video_id), the most recent ``max_uih_len``). Each event also carries its timestamp in epoch seconds and its
watch time in seconds, as the samples store them, so building samples only picks struct fields
(code-generated) instead of converting every element with a lambda. ``v2`` names that layout: a layout change
gets a new folder, so an older state is never read with the wrong schema (a missing folder means a cold start).

A day's job reads the newest state at or before its window start and adds the clean events of the days in
between, instead of recomputing history from all of time; with no state (cold start) it rebuilds from the raw
logs. Both give identical histories: appending newer events to a sorted history and keeping the last N is the
same as sorting everything and keeping the last N, because every new event is later than every state event
(quality puts each event inside its partition's day).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import date

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from components.config import DataConfig
from components.data.quality import clean_events, flag_bad_rows
from components.data.sources import event_partitions, events_root, read_events
from components.data.spark import HadoopFs

log = logging.getLogger(__name__)

STATE_LAYOUT = "v2"
# Field order is the sort order: struct comparison is lexicographic, so array_sort orders by (time_ms, video_id)
# (events are unique by user, video and time, so the later fields never decide).
EVENT_STRUCT = T.StructType([
    T.StructField("time_ms", T.LongType()),
    T.StructField("video_id", T.LongType()),
    T.StructField("action_weight", T.LongType()),
    T.StructField("time_s", T.LongType()),  # epoch seconds, time_ms floored (docs/design.md §4.3)
    T.StructField("watch_s", T.DoubleType()),  # play time in seconds
])
HISTORY_SCHEMA = T.StructType([
    T.StructField("user_id", T.LongType()),
    T.StructField("events", T.ArrayType(EVENT_STRUCT, containsNull=False)),
])


def _event_struct() -> Column:
    """A canonical event (sources.EVENT_SCHEMA columns) as an EVENT_STRUCT."""
    return F.struct(F.col("time_ms").cast("bigint").alias("time_ms"),
                    F.col("video_id").cast("bigint").alias("video_id"),
                    F.col("action_weight").cast("bigint").alias("action_weight"),
                    F.floor(F.col("time_ms") / 1000).cast("bigint").alias("time_s"),
                    (F.col("play_time_ms") / 1000.0).cast("double").alias("watch_s"))


def empty_events() -> Column:
    """An empty array<EVENT_STRUCT> (a user without history or without new events)."""
    return F.array().cast(T.ArrayType(EVENT_STRUCT, containsNull=False))


def last_n(events: Column, n: int) -> Column:
    """The last ``n`` elements of an array column (all of it when shorter)."""
    return F.when(F.size(events) > n, F.slice(events, F.size(events) - n + 1, n)).otherwise(events)


def events_by_user(events: DataFrame) -> DataFrame:
    """Clean events -> one row per user: [user_id int64, events array<EVENT_STRUCT> ascending]."""
    return events.groupBy("user_id").agg(F.array_sort(F.collect_list(_event_struct())).alias("events"))


def update_history(state: DataFrame, new_events: DataFrame, max_len: int, *, grouped: bool = False) -> DataFrame:
    """Adds clean events, all later than the state's, to a history state.

    Args:
        state: [user_id, events array<EVENT_STRUCT>] (HISTORY_SCHEMA).
        new_events: clean canonical events, every one later than any event of ``state``; or, with ``grouped``,
            those events already grouped by ``events_by_user`` (saves a second grouping in the sample job).
        max_len: events kept per user (the most recent).
    Returns:
        the new state (HISTORY_SCHEMA): users of either input, events ascending, at most ``max_len``.
    """
    empty = empty_events()
    new = (new_events if grouped else events_by_user(new_events)).withColumnRenamed("events", "new")
    joined = state.join(new, "user_id", "full_outer")
    merged = F.concat(F.coalesce(F.col("events"), empty), F.coalesce(F.col("new"), empty))
    return joined.select("user_id", last_n(merged, max_len).alias("events"))


def empty_state(spark: SparkSession) -> DataFrame:
    return spark.createDataFrame([], HISTORY_SCHEMA)


def history_root(work_dir: str) -> str:
    return f"{work_dir.rstrip('/')}/history/{STATE_LAYOUT}"


def history_uri(work_dir: str, day: date) -> str:
    return f"{history_root(work_dir)}/dt={day.isoformat()}"


def latest_state_day(spark: SparkSession, work_dir: str, day: date) -> date | None:
    """The newest saved state at or before ``day`` (None: cold start)."""
    saved = [d for d in event_partitions(spark, history_root(work_dir)) if d <= day]
    return max(saved, default=None)


def flagged_days(spark: SparkSession, data: DataConfig, days: list[date]) -> DataFrame:
    """The events of raw partitions ``days`` with their quality ``reason`` (the window's own rules)."""
    raw = read_events(spark, root=events_root(data), fmt=data.events_format, days=days, mapping=data.column_mapping)
    return flag_bad_rows(raw)


@dataclass(frozen=True)
class HistoryRead:
    """The history state of a window's start and what was read to build it."""

    state: DataFrame  # HISTORY_SCHEMA
    source: str  # "state dt=D", "state dt=D + N days" or "cold start"
    raw_days: list[date]  # raw partitions read for it (their bad rows still need the quarantine)
    flagged: DataFrame | None  # those partitions' events with their ``reason`` (None when none was read)


def history_before(spark: SparkSession, data: DataConfig, start: date) -> HistoryRead:
    """The history state of day ``start`` (events strictly before it), from the newest saved state plus the raw
    days after it, or from every raw day before ``start`` on a cold start."""
    state_day = latest_state_day(spark, data.work_dir, start)
    raw_days = sorted(event_partitions(spark, events_root(data)))
    if state_day is None:
        days = [d for d in raw_days if d < start]
        log.info("history for %s: cold start from %d raw days", start, len(days))
        if not days:
            return HistoryRead(empty_state(spark), "cold start", [], None)
        flagged = flagged_days(spark, data, days)
        return HistoryRead(update_history(empty_state(spark), clean_events(flagged), data.max_uih_len),
                           "cold start", days, flagged)
    state = spark.read.schema(HISTORY_SCHEMA).parquet(history_uri(data.work_dir, state_day))
    days = [d for d in raw_days if state_day <= d < start]
    if not days:
        return HistoryRead(state, f"state dt={state_day}", [], None)
    log.info("history for %s: state dt=%s plus %d raw days", start, state_day, len(days))
    flagged = flagged_days(spark, data, days)
    return HistoryRead(update_history(state, clean_events(flagged), data.max_uih_len), flagged=flagged,
                       source=f"state dt={state_day} + {len(days)} days", raw_days=days)


def write_state(spark: SparkSession, state: DataFrame, work_dir: str, day: date) -> str:
    """Writes the state of ``day`` atomically (temp folder, then rename over the old one); returns its URI."""
    final = history_uri(work_dir, day)
    tmp = f"{history_root(work_dir)}/_tmp-{uuid.uuid4().hex}"
    state.write.mode("overwrite").parquet(tmp)
    HadoopFs(spark).replace_dir(tmp, final)
    return final
