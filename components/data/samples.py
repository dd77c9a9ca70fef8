"""The Spark sample builder: raw events -> one row per (user, window) in Parquet (docs/design.md §4.3).

For a window ``[start, start + window_days)`` every user with at least one clean event inside it gets one row:
``user_id`` and the contextual ids, the history strictly before ``start`` (ascending by (time_ms, video_id),
the most recent ``max_uih_len``) and the window's events as candidates (ascending, the earliest
``max_candidates``). With ``history_mode: QUERY_TIME`` the history lists continue with the candidates' own
events (their real actions), which the model shows each candidate only from the events before it. Output, all under ``data.work_dir``:

    samples/dt=YYYY-MM-DD/      the samples (Parquet), replaced atomically on a rerun
    quarantine/dt=YYYY-MM-DD/   the window's bad rows with a ``reason`` column; a raw day read only for history
                                (cold start, skipped windows) gets its own, once (quarantine_history_days)
    history/v2/dt=YYYY-MM-DD/   per-user history state of events before that day (see history.py)
    stats/dt=YYYY-MM-DD.json    counts, history length percentiles, label rates, quarantined rows by reason
    vocab/contextual.json       the stable categorical id mapping (see vocab.py)
    vocab/ids.json              the id features' exact vocabularies, raw id -> embedding row (see id_vocab.py)

With a side feature in the model's history / candidate groups (the video's tag), the lists carry it beside the
video ids (side_features.py).

Run it as ``python -m components.data.samples --config C --window-start D`` or, on a cluster,
``spark-submit components/data/samples.py --config C --window-start D`` (same code, spark-submit's session).
Everything heavy stays in Spark (collect_list of structs, array_sort, slice, joins); only counts reach the driver.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file by spark-submit: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from dataclasses import asdict, dataclass  # noqa: E402
from datetime import date, timedelta  # noqa: E402

import numpy as np  # noqa: E402
from pyspark import StorageLevel  # noqa: E402
from pyspark.sql import DataFrame, SparkSession  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402

from components.config import PipelineConfig, apply_overrides, load_config  # noqa: E402
from components.data.history import (  # noqa: E402
    HistoryRead,
    empty_events,
    events_by_user,
    history_before,
    update_history,
    write_state,
)
from components.data.id_vocab import extend_ids, load_id_vocab, save_id_vocab, vocabulary_tables  # noqa: E402
from components.data.item_counters import item_counts_by_user, lookback_days  # noqa: E402
from components.data.quality import (  # noqa: E402
    check_bad_fraction,
    clean_events,
    flag_bad_rows,
    quarantined_rows,
    reason_counts,
)
from components.data.sample_names import ITEM_COUNTS_COLUMN, SampleNames  # noqa: E402
from components.data.sample_stats import id_counts, id_stats, window_stats  # noqa: E402
from components.data.side_features import read_side_table, with_side_feature  # noqa: E402
from components.data.sources import (  # noqa: E402
    event_partitions,
    events_root,
    read_events,
    read_user_features,
    user_features_file,
    video_features_file,
)
from components.data.spark import HadoopFs, get_spark  # noqa: E402
from components.data.vocab import (  # noqa: E402
    apply_vocab,
    distinct_values,
    extend_vocab,
    is_raw_id,
    load_vocab,
    save_vocab,
)
from components.data.windows import add_window_arguments  # noqa: E402
from components.id_features import MISSING_SIDE_VALUE, SIDE_FEATURES  # noqa: E402

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SamplesResult:
    """What one window's build wrote, and its main counts (the full statistics are in ``stats_uri``)."""

    window_start: date
    window_end: date
    samples_uri: str
    stats_uri: str
    quarantine_uri: str
    samples: int
    candidates: int
    dropped_candidates: int
    quarantined: int
    history_source: str
    seconds: float

    def to_dict(self) -> dict:
        d = asdict(self)
        d["window_start"], d["window_end"] = self.window_start.isoformat(), self.window_end.isoformat()
        return d


def in_window(events: DataFrame, start: date, end: date) -> DataFrame:
    """Events with ``start <= time < end`` (UTC midnights), the half-open window."""
    lo = F.unix_millis(F.lit(start).cast("timestamp"))
    hi = F.unix_millis(F.lit(end).cast("timestamp"))
    return events.filter((F.col("time_ms") >= lo) & (F.col("time_ms") < hi))


def window_samples(history: DataFrame, window_by_user: DataFrame, contextual: DataFrame, *,
                   names: SampleNames, max_candidates: int, query_time: bool = False) -> DataFrame:
    """The samples of one window (pure DataFrame -> DataFrame).

    Args:
        history: state of the window start, [user_id, events array<EVENT_STRUCT>] (history.HISTORY_SCHEMA).
        window_by_user: the clean events inside the window grouped per user (``history.events_by_user``).
        contextual: [user_id, *names.contextual[1:]] int64 ids (users absent here get 0 for every column).
        names: output column names; max_candidates: the earliest this many window events are kept.
        query_time: the history lists also hold the candidates' own events after the pre-window history
            (``data_config.history_mode: QUERY_TIME``; the model lets candidate j see only those before j).
    Returns:
        one row per user with a window event: user_id and contextual columns int64; history list columns
        (video ids int64, action weights int64, watch time seconds float64, timestamps epoch s int64) and
        candidate list columns of the same types.
    """
    cands = window_by_user.select(
        "user_id", F.slice("events", 1, max_candidates).alias("cands"))
    joined = cands.join(history.withColumnRenamed("events", "hist"), "user_id", "left") \
        .join(contextual, "user_id", "left")
    hist = F.coalesce(F.col("hist"), empty_events())
    if query_time:
        hist = F.concat(hist, F.col("cands"))
    ctx = [F.coalesce(F.col(c), F.lit(0)).cast("bigint").alias(c) for c in names.contextual if c != "user_id"]
    return joined.select(
        F.col("user_id").cast("bigint").alias("user_id"), *ctx,
        # Field access on an array of structs gives the array of that field (code-generated, no lambda);
        # the state keeps seconds and watch seconds per event for exactly this.
        hist["video_id"].alias(names.video_id),
        hist["action_weight"].alias(names.action_weight),
        hist["watch_s"].alias(names.watch_time),
        hist["time_s"].alias(names.action_timestamp),
        F.col("cands")["video_id"].alias(names.item_video_id),
        F.col("cands")["time_s"].alias(names.item_query_time),
        F.col("cands")["action_weight"].alias(names.item_action_weight),
        F.col("cands")["watch_s"].alias(names.item_watch_time),
    )


def dropped_candidates(window_by_user: DataFrame, max_candidates: int) -> int:
    """Window events beyond each user's first ``max_candidates`` (an aggregate, one number to the driver)."""
    row = window_by_user.agg(F.sum(F.greatest(F.size("events") - max_candidates, F.lit(0))).alias("n")).first()
    return int(row["n"] or 0)


def _contextual(spark: SparkSession, config: PipelineConfig, names: SampleNames) -> DataFrame:
    """User features as int64 ids; extends and saves the vocabulary with values seen for the first time."""
    columns = [c for c in names.contextual if c != "user_id"]
    if not columns:
        return spark.createDataFrame([], "user_id bigint")
    feats = read_user_features(spark, user_features_file(config.data), columns)
    categorical = [c for c in columns if not is_raw_id(c)]
    vocab = load_vocab(spark, config.data.work_dir)
    grown = extend_vocab(vocab, distinct_values(feats, categorical))
    if grown != vocab:
        save_vocab(spark, config.data.work_dir, grown)
    return apply_vocab(feats, grown, columns)


def _grow_id_vocab(spark: SparkSession, config: PipelineConfig, start: date, samples: DataFrame) -> dict:
    """Adds the window's ids to the id vocabularies (saved when they grew); returns the per-feature id statistics."""
    tables = config.model.embedding_tables
    counts = id_counts(samples, [f for t in tables for f in t.feature_names])
    rows = vocabulary_tables(tables)
    seen = {name: np.concatenate([counts[f][0] for t in tables if t.name == name for f in t.feature_names])
            for name in rows}
    # A video without a side value is not an id: it stays out of the vocabulary and reads row 0, which the
    # model's side match never counts as a match.
    side = {t.name for t in tables if any(f in SIDE_FEATURES for f in t.feature_names)}
    seen = {name: ids[ids != MISSING_SIDE_VALUE] if name in side else ids for name, ids in seen.items()}
    vocab = load_id_vocab(spark, config.data.work_dir)
    grown, overflow = extend_ids(vocab, start, seen, rows)
    if grown != vocab:
        save_id_vocab(spark, config.data.work_dir, grown)
    for table, ids in overflow.items():
        if len(ids):
            log.warning("window %s: vocabulary of table %r is full (%d rows): %d new ids read the reserved row 0; "
                        "raise its num_buckets", start, table, rows[table], len(ids))
    return id_stats(counts, tables, grown, overflow, start)


def _with_item_counts(spark: SparkSession, config: PipelineConfig, samples: DataFrame, clean: DataFrame,
                      start: date, end: date) -> DataFrame:
    """``samples`` plus ``item_counts`` (item_counters.py): the window's clean events and those of the
    ``item_counter_days`` raw days before it (cleaned by the same rules; their bad rows are quarantined by
    their own windows), counted per video."""
    data = config.data
    earlier = read_events(spark, root=events_root(data), fmt=data.events_format,
                          days=lookback_days(start, data.item_counter_days), mapping=data.column_mapping)
    events = in_window(clean, start, end).unionByName(clean_events(flag_bad_rows(earlier)))
    counts = item_counts_by_user(events, start, end, data.item_counter_days, data.max_candidates)
    return samples.join(counts, "user_id", "left").select(*samples.columns, ITEM_COUNTS_COLUMN)


def _replace_partition(spark: SparkSession, df: DataFrame, root: str, day: date) -> str:
    """Writes ``df`` to a temp folder under ``root``, then renames it over ``root/dt=day``."""
    tmp, final = f"{root}/_tmp-{uuid.uuid4().hex}", f"{root}/dt={day.isoformat()}"
    df.write.mode("overwrite").parquet(tmp)
    HadoopFs(spark).replace_dir(tmp, final)
    return final


def quarantine_history_days(spark: SparkSession, read: HistoryRead, work: str, window_days: int) -> dict:
    """Quarantines the bad rows of the raw days read only for history (a cold start, skipped windows).

    Each such day gets ``quarantine/dt=<day>`` (empty when the day is clean) unless a quarantine partition
    already covers it (its own window's, or an earlier history read's), so every raw day is validated once
    and its bad rows are counted by the window that first read it.
    Returns:
        {"days": [days validated now], "total": bad rows, <reason>: rows} for the window's statistics.
    """
    done = event_partitions(spark, f"{work}/quarantine")
    span = timedelta(days=window_days)
    new = [d for d in read.raw_days if not any(s <= d < s + span for s in done)]
    if read.flagged is None or not new:
        return {"days": [], "total": 0}
    bad = quarantined_rows(read.flagged).filter(F.col("dt").isin(new)).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        counts = {r["reason"]: int(r["count"]) for r in bad.groupBy("reason").count().collect()}
        for day in new:
            _replace_partition(spark, bad.filter(F.col("dt") == F.lit(day)), f"{work}/quarantine", day)
    finally:
        bad.unpersist()
    return {"days": [d.isoformat() for d in new], "total": sum(counts.values()), **dict(sorted(counts.items()))}


def _build_window(spark: SparkSession, config: PipelineConfig, start: date, contextual: DataFrame,
                  side_table: DataFrame | None) -> SamplesResult:
    t0, data, names = time.perf_counter(), config.data, SampleNames.from_config(config)
    end, work = start + timedelta(days=data.window_days), data.work_dir.rstrip("/")
    days = [start + timedelta(days=i) for i in range(data.window_days)]
    parts = event_partitions(spark, events_root(data))
    if not any(d in parts for d in days):
        raise ValueError(f"no raw event partition for window [{start}, {end}) under {events_root(data)} "
                         f"(expected folders dt={start.isoformat()} ...)")
    # One shuffle by user serves the duplicate check, the per-user grouping and both joins with the history
    # (a fixed partition count, so every side has the same partitioning and no join shuffles again).
    by_user_partitions = int(spark.conf.get("spark.sql.shuffle.partitions"))
    raw = read_events(spark, root=events_root(data), fmt=data.events_format, days=days, mapping=data.column_mapping)
    flagged = flag_bad_rows(raw.repartition(by_user_partitions, "user_id")).persist(StorageLevel.MEMORY_AND_DISK)
    cached = [flagged]
    try:
        total, by_reason = reason_counts(flagged)
        check_bad_fraction(total, by_reason, data.max_bad_row_fraction, start, end)
        # Both are used twice (samples and the next state): computed once, kept in memory or on local disk.
        by_user = events_by_user(in_window(clean_events(flagged), start, end)).persist(StorageLevel.MEMORY_AND_DISK)
        read = history_before(spark, data, start)
        history, source = read.state, read.source
        history = history.repartition(by_user_partitions, "user_id").persist(StorageLevel.MEMORY_AND_DISK)
        cached.extend([by_user, history])
        # Materialised now, the caches report their hash partitioning by user_id, so the joins below read them
        # as they are; an unmaterialised (adaptive) cache would be shuffled again by each join.
        by_user.count()
        history.count()
        samples = window_samples(history, by_user, contextual, names=names, max_candidates=data.max_candidates,
                                 query_time=data.query_time)
        if side_table is not None:
            samples = with_side_feature(samples, side_table, history_ids=names.video_id,
                                        candidate_ids=names.item_video_id, history_out=names.side_feature,
                                        candidate_out=names.item_side_feature)
        if data.item_counter_days:
            samples = _with_item_counts(spark, config, samples, clean_events(flagged), start, end)
        samples_uri = _replace_partition(spark, samples, f"{work}/samples", start)
        quarantine_uri = _replace_partition(spark, quarantined_rows(flagged), f"{work}/quarantine", start)
        write_state(spark, update_history(history, by_user, data.max_uih_len, grouped=True), work, end)
        history_quarantined = quarantine_history_days(spark, read, work, data.window_days)
        dropped = dropped_candidates(by_user, data.max_candidates)
    finally:
        for frame in cached:
            frame.unpersist()
    written = spark.read.parquet(samples_uri)
    stats = window_stats(written, names=names, tasks=config.model.tasks)
    stats["ids"] = _grow_id_vocab(spark, config, start, written)
    stats.update(window_start=start.isoformat(), window_end=end.isoformat(), events=total,
                 clean_events=total - sum(by_reason.values()), dropped_candidates=dropped,
                 quarantined={"total": sum(by_reason.values()), **by_reason},
                 bad_row_fraction=(sum(by_reason.values()) / total) if total else 0.0, history_source=source,
                 history_quarantined=history_quarantined,
                 max_uih_len=data.max_uih_len, max_candidates=data.max_candidates)
    stats_uri = f"{work}/stats/dt={start.isoformat()}.json"
    HadoopFs(spark).write_text(stats_uri, json.dumps(stats, indent=1, sort_keys=True) + "\n")
    result = SamplesResult(start, end, samples_uri, stats_uri, quarantine_uri, stats["samples"], stats["candidates"],
                           dropped, sum(by_reason.values()), source, round(time.perf_counter() - t0, 3))
    log.info("window %s: %d samples, %d candidates (%d dropped), %d quarantined, history from %s, %.1f s",
             start, result.samples, result.candidates, dropped, result.quarantined, source, result.seconds)
    return result


def build_samples(*, config: PipelineConfig, window_starts: list[date],
                  spark: SparkSession | None = None) -> list[SamplesResult]:
    """Builds the samples of each window (docs/design.md §4.3), in ascending order of start.

    Several windows in one call (a backfill) give the same partitions as one call per window: each window
    reads the history state the previous one wrote. A rerun of a window replaces exactly its partitions.
    Args:
        config: the pipeline config (``data`` section and the model's feature groups and tasks).
        window_starts: first days of the windows; each window is ``[start, start + data.window_days)``.
        spark: a session to use (default: ``get_spark`` with the config's master and driver memory).
    Returns:
        one SamplesResult per window, in ascending order.
    Raises:
        ValueError: a window has no raw partition, a file lacks a required column, or bad rows exceed
            ``data.max_bad_row_fraction`` (that window and the later ones write nothing).
    """
    if not window_starts:
        raise ValueError("window_starts is empty; give at least one window start date")
    spark = spark or get_spark(master=config.data.spark_master, driver_memory=config.data.spark_driver_memory)
    names = SampleNames.from_config(config)
    contextual = _contextual(spark, config, names).persist()
    side_table = None
    if names.side_feature:
        side_table = read_side_table(spark, video_features_file(config.data),
                                     SIDE_FEATURES[names.side_feature]).persist()
    try:
        return [_build_window(spark, config, start, contextual, side_table) for start in sorted(set(window_starts))]
    finally:
        contextual.unpersist()
        if side_table is not None:
            side_table.unpersist()


def window_starts_between(start: date, end: date | None, window_days: int) -> list[date]:
    """Window starts from ``start`` up to, not including, ``end`` in steps of ``window_days`` ([start] if no end)."""
    if end is None:
        return [start]
    if end <= start:
        raise ValueError(f"window end {end} must be after window start {start}")
    n = -(-(end - start).days // window_days)
    return [start + timedelta(days=i * window_days) for i in range(n)]


def run(args: argparse.Namespace) -> list[SamplesResult]:
    """Builds the windows the parsed arguments name."""
    config = apply_overrides(load_config(args.config), work_dir=args.work_dir)
    starts = window_starts_between(args.window_start, args.window_end, config.data.window_days)
    return build_samples(config=config, window_starts=starts)


def summary(result: SamplesResult) -> str:
    return (f"{result.window_start}: {result.samples} samples, {result.candidates} candidates, "
            f"{result.quarantined} quarantined -> {result.samples_uri}")


def main(argv: list[str] | None = None) -> int:
    """``python -m components.data.samples`` / ``spark-submit components/data/samples.py``: build windows, print a summary."""
    parser = argparse.ArgumentParser(prog="components.data.samples", description=__doc__.splitlines()[0])
    add_window_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object per window")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        results = run(args)
    except (ValueError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for r in results:
        print(json.dumps(r.to_dict()) if args.json else summary(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
