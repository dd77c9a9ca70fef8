"""Data quality before aggregation: flag bad rows with a reason, count them, fail above the limit.

Rules (docs/design.md §4.3), checked in this order, the first that fires is the row's ``reason``:

- ``unparsable_<column>``: a required value is present but not a number;
- ``null_id`` / ``negative_id``: user_id or video_id missing or below 0;
- ``null_time`` / ``time_out_of_range``: time_ms missing, or outside its ``dt=`` partition's day
  ``[dt 00:00, dt+1 00:00)`` UTC (partitions and windows then always agree);
- ``null_duration`` / ``negative_duration``: play_time_ms or duration_ms missing or below 0;
- ``duplicate``: events are unique by (user_id, video_id, time_ms); of several copies the smallest by
  (play_time_ms, duration_ms, action_weight) is kept, so the choice is deterministic, the others quarantined.

Bad rows never silently disappear: they go to the quarantine dataset with their reason, and are counted in the
window's statistics. Above ``max_bad_row_fraction`` the job fails before it writes anything.
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.window import Window

REASONS = ("unparsable", "null_id", "negative_id", "null_time", "time_out_of_range", "null_duration",
           "negative_duration", "duplicate")
EVENT_KEY = ("user_id", "video_id", "time_ms")
_DAY_MS = 86_400_000


def _row_reason() -> Column:
    """The first rule a row breaks (null when it breaks none), duplicates aside."""
    uid, vid, t = F.col("user_id"), F.col("video_id"), F.col("time_ms")
    play, dur = F.col("play_time_ms"), F.col("duration_ms")
    day_start = F.unix_millis(F.col("dt").cast("timestamp"))
    return (F.when(F.col("bad_parse").isNotNull(), F.concat(F.lit("unparsable_"), F.col("bad_parse")))
            .when(uid.isNull() | vid.isNull(), F.lit("null_id"))
            .when((uid < 0) | (vid < 0), F.lit("negative_id"))
            .when(t.isNull(), F.lit("null_time"))
            .when(F.col("dt").isNull() | (t < day_start) | (t >= day_start + F.lit(_DAY_MS)),
                  F.lit("time_out_of_range"))
            .when(play.isNull() | dur.isNull(), F.lit("null_duration"))
            .when((play < 0) | (dur < 0), F.lit("negative_duration")))


def flag_bad_rows(events: DataFrame) -> DataFrame:
    """Adds ``reason`` (string, null for a good row) to canonical events (``sources.EVENT_SCHEMA``).

    Duplicates are judged among the rows that pass every other rule.
    Returns:
        the same rows and columns plus ``reason``.
    """
    flagged = events.withColumn("reason", _row_reason())
    # Good and bad copies rank apart (the last partition key), so a bad copy never hides a good one. One window,
    # no union: a frame already hash-partitioned by user_id is not shuffled again (user_id is a key here).
    order = (Window.partitionBy(*EVENT_KEY, F.col("reason").isNull())
             .orderBy("play_time_ms", "duration_ms", "action_weight"))
    duplicate = F.col("reason").isNull() & (F.row_number().over(order) > 1)
    return flagged.withColumn("reason", F.when(duplicate, F.lit("duplicate")).otherwise(F.col("reason")))


def clean_events(flagged: DataFrame) -> DataFrame:
    """The good rows of ``flag_bad_rows`` output, without the bookkeeping columns."""
    return flagged.filter(F.col("reason").isNull()).drop("reason", "bad_parse")


def quarantined_rows(flagged: DataFrame) -> DataFrame:
    """The bad rows of ``flag_bad_rows`` output, with their ``reason``."""
    return flagged.filter(F.col("reason").isNotNull())


def reason_counts(flagged: DataFrame) -> tuple[int, dict[str, int]]:
    """(rows in total, {reason: rows}) in one aggregation pass; only the counts reach the driver."""
    rows = flagged.groupBy("reason").count().collect()
    by_reason = {r["reason"]: int(r["count"]) for r in rows if r["reason"] is not None}
    return sum(int(r["count"]) for r in rows), dict(sorted(by_reason.items()))


def check_bad_fraction(total: int, by_reason: dict[str, int], max_fraction: float, window_start: date,
                       window_end: date) -> None:
    """Raises ValueError when bad rows exceed ``max_fraction`` of the window's rows.

    The message names the counts by reason, the fraction, the limit and the window.
    """
    bad = sum(by_reason.values())
    if total and bad / total > max_fraction:
        reasons = ", ".join(f"{n} {r}" for r, n in by_reason.items())
        raise ValueError(
            f"{bad} of {total} rows ({bad / total:.2%}) are bad in window [{window_start}, {window_end}) "
            f"({reasons}); above data_config.max_bad_row_fraction {max_fraction:.2%}: nothing was written")
