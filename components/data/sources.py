"""Raw event and user-feature readers: date-partitioned CSV or Parquet into one canonical event frame.

Columns are matched by name, never by position: every CSV file's header is read first and files are grouped by
header, so files with reordered columns mix freely. A file that lacks a required column fails the job with the
file and the column named (docs/design.md §4.1). Other logs (ratings, purchases) enter through a declared
``ColumnMapping``: each field is a source column or a Spark SQL expression over the source columns, and action
flags come from ``action_rules`` (a Spark SQL condition per action).

Values are parsed leniently (``try_cast``): a value that does not parse becomes null and the row carries the
name of that column in ``bad_parse``, so ``quality`` can quarantine it instead of crashing the job.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from datetime import date, datetime

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.utils import AnalysisException
from pyspark.sql.window import Window

from components.config import ACTIONS, ColumnMapping, DataConfig
from components.data.spark import HadoopFs

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("user_id", "video_id", "time_ms", "play_time_ms", "duration_ms")
# docs/design.md §4.2: bit k of the action weight is ACTIONS[k] (click 1, like 2, ..., profile_enter 128).
ACTION_BITS = {name: 1 << k for k, name in enumerate(ACTIONS)}
# The canonical event frame every reader returns (dt: the date of the file's dt= partition).
EVENT_SCHEMA = T.StructType([
    T.StructField("user_id", T.LongType()),
    T.StructField("video_id", T.LongType()),
    T.StructField("time_ms", T.LongType()),
    T.StructField("action_weight", T.LongType()),
    T.StructField("play_time_ms", T.DoubleType()),
    T.StructField("duration_ms", T.DoubleType()),
    T.StructField("dt", T.DateType()),
    T.StructField("bad_parse", T.StringType()),
])
_PARTITION = re.compile(r"^dt=(\d{4}-\d{2}-\d{2})$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def events_root(data: DataConfig) -> str:
    """The raw events folder: ``data.events_path``, else ``{work_dir}/raw/events``."""
    return data.events_path or f"{data.work_dir.rstrip('/')}/raw/events"


def user_features_file(data: DataConfig) -> str:
    """The user features file: ``data.user_features_path``, else ``{work_dir}/raw/user_features/user_features.csv``."""
    return data.user_features_path or f"{data.work_dir.rstrip('/')}/raw/user_features/user_features.csv"


def video_features_file(data: DataConfig) -> str:
    """The video table: ``data.video_features_path``, else ``{work_dir}/raw/video_features/video_features.csv``."""
    return data.video_features_path or f"{data.work_dir.rstrip('/')}/raw/video_features/video_features.csv"


def event_partitions(spark: SparkSession, root: str) -> dict[date, str]:
    """The ``dt=YYYY-MM-DD`` folders under ``root``: {day: folder URI}. Other names are ignored."""
    out = {}
    for name in HadoopFs(spark).list_dirs(root):
        m = _PARTITION.match(name)
        if m:
            out[datetime.strptime(m.group(1), "%Y-%m-%d").date()] = f"{root.rstrip('/')}/{name}"
    return out


def _split_header(line: str) -> tuple[str, ...]:
    return tuple(c.strip().strip('"').strip() for c in line.lstrip("\ufeff").split(","))


def _needed_columns(mapping: ColumnMapping | None) -> list[str]:
    """Source columns that must exist in every file (bare names only; expressions are checked by Spark)."""
    if mapping is None:
        return list(REQUIRED_COLUMNS)
    fields = [mapping.user_id, mapping.video_id, mapping.time, mapping.play_time_ms, mapping.duration_ms]
    return [f for f in fields if f and _IDENTIFIER.match(f)]


def check_columns(file: str, found: Sequence[str], needed: Sequence[str]) -> None:
    for column in needed:
        if column not in found:
            raise ValueError(f"{file}: missing required column {column!r}; the file has columns {list(found)}")


def _canonical(df: DataFrame, mapping: ColumnMapping | None, columns: Sequence[str]) -> DataFrame:
    """Source frame (+ ``_file``) -> EVENT_SCHEMA columns."""
    if mapping is None:
        raw = {name: F.col(name) for name in REQUIRED_COLUMNS}
        time_ms = raw["time_ms"].try_cast(T.LongType())
        flags = {a: (F.coalesce(F.col(a).try_cast(T.LongType()), F.lit(0)) != 0) if a in columns else F.lit(False)
                 for a in ACTIONS}
    else:
        raw = {"user_id": F.expr(mapping.user_id), "video_id": F.expr(mapping.video_id), "time_ms": F.expr(mapping.time),
               "play_time_ms": F.expr(mapping.play_time_ms) if mapping.play_time_ms else F.lit(0),
               "duration_ms": F.expr(mapping.duration_ms) if mapping.duration_ms else F.lit(0)}
        if mapping.time_unit == "s":
            time_ms = F.floor(raw["time_ms"].try_cast(T.DoubleType()) * 1000).try_cast(T.LongType())
        else:
            time_ms = raw["time_ms"].try_cast(T.LongType())
        flags = {a: F.lit(False) for a in ACTIONS}
        for rule in mapping.action_rules:
            flags[rule.action] = flags[rule.action] | F.coalesce(F.expr(rule.when).cast("boolean"), F.lit(False))
    typed = {
        "user_id": raw["user_id"].try_cast(T.LongType()),
        "video_id": raw["video_id"].try_cast(T.LongType()),
        "time_ms": time_ms,
        "play_time_ms": raw["play_time_ms"].try_cast(T.DoubleType()),
        "duration_ms": raw["duration_ms"].try_cast(T.DoubleType()),
    }
    weight = F.lit(0).cast(T.LongType())
    for action, flag in flags.items():
        weight = weight + F.when(flag, F.lit(ACTION_BITS[action])).otherwise(F.lit(0))
    bad_parse = F.coalesce(*[F.when(raw[c].isNotNull() & typed[c].isNull(), F.lit(c)) for c in REQUIRED_COLUMNS])
    dt = F.to_date(F.regexp_extract(F.col("_file"), r"dt=(\d{4}-\d{2}-\d{2})", 1))
    return df.select(*[typed[c].alias(c) for c in ("user_id", "video_id", "time_ms")],
                     weight.cast(T.LongType()).alias("action_weight"),
                     typed["play_time_ms"].alias("play_time_ms"), typed["duration_ms"].alias("duration_ms"),
                     dt.alias("dt"), bad_parse.alias("bad_parse"))


def _group_files(spark: SparkSession, files: Sequence[str], fmt: str) -> dict[tuple[str, ...], list[str]]:
    """Files grouped by their column list (CSV header, or Parquet schema names)."""
    fs, groups = HadoopFs(spark), {}
    for file in files:
        if fmt == "csv":
            columns = _split_header(fs.first_line(file))
        else:
            schema = spark.read.parquet(file).schema
            for field in schema.fields:
                if isinstance(field.dataType, (T.ArrayType, T.MapType, T.StructType)):
                    raise TypeError(f"{file}: column {field.name!r} has type {field.dataType.simpleString()}; "
                                    "expected a number or a string")
            columns = tuple(schema.names)
        groups.setdefault(columns, []).append(file)
    return groups


def _read_group(spark: SparkSession, files: list[str], columns: tuple[str, ...], fmt: str,
                mapping: ColumnMapping | None) -> DataFrame:
    if fmt == "parquet":
        df = spark.read.parquet(*files)
    elif mapping is None:
        # Every value as text, parsed leniently later: no inference pass over the data.
        schema = T.StructType([T.StructField(c, T.StringType()) for c in columns])
        df = spark.read.option("header", True).schema(schema).csv(list(files))
    else:
        # Mapping expressions compare with numbers ("rating >= 4"): give them typed columns.
        df = spark.read.option("header", True).option("inferSchema", True).csv(list(files))
    return df.withColumn("_file", F.col("_metadata.file_path"))


def read_events(spark: SparkSession, *, root: str, fmt: str, days: Sequence[date],
                mapping: ColumnMapping | None = None) -> DataFrame:
    """Reads the raw events of ``days`` (the ``dt=`` partitions under ``root``) into the canonical frame.

    Args:
        root: folder (local path or URI) holding ``dt=YYYY-MM-DD/`` partitions of CSV (with header) or Parquet.
        fmt: "csv" or "parquet".
        days: the partitions to read; days without a partition are skipped (the caller decides if that is ok).
        mapping: a declared column mapping for logs not in the KuaiRand schema (None: KuaiRand columns).
    Returns:
        DataFrame with EVENT_SCHEMA: ids and time_ms int64 (null when missing or unparsable), action_weight
        int64 (docs/design.md §4.2 bitmask; missing flags count as 0), play_time_ms/duration_ms float64, dt (the
        partition date), bad_parse (name of the first required column whose value did not parse, else null).
    Raises:
        ValueError: a file lacks a required column (the file and the column are named).
        TypeError: a Parquet column has a nested type.
    """
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"events format {fmt!r}; expected 'csv' or 'parquet'")
    parts, fs = event_partitions(spark, root), HadoopFs(spark)
    other = ".parquet" if fmt == "csv" else (".csv", ".csv.gz", ".csv.bz2")
    files = [f for d in sorted(set(days)) if d in parts for f in fs.list_files(parts[d]) if not f.endswith(other)]
    frames = []
    for columns, group in _group_files(spark, files, fmt).items():
        check_columns(group[0], columns, _needed_columns(mapping))
        df = _read_group(spark, group, columns, fmt, mapping)
        try:
            frames.append(_canonical(df, mapping, columns))
        except AnalysisException as exc:
            raise ValueError(f"column mapping does not fit {group[0]} (columns {list(columns)}): "
                             f"{str(exc).splitlines()[0]}") from None
    if not frames:
        return spark.createDataFrame([], EVENT_SCHEMA)
    out = frames[0]
    for frame in frames[1:]:
        out = out.unionByName(frame)
    return out


def read_user_features(spark: SparkSession, path: str, columns: Sequence[str]) -> DataFrame:
    """Reads the user features table (KuaiRand ``user_features_pure.csv`` format, or Parquet by extension).

    Args:
        path: the file (local path or URI).
        columns: the contextual columns wanted besides ``user_id``.
    Returns:
        DataFrame [user_id int64, *columns as trimmed strings]; values keep their text ("UNKNOWN", "-124",
        "[100,1k)"); rows with an unparsable user_id are dropped; one row per user_id (the smallest by the
        wanted columns when a user appears twice, so the choice is deterministic).
    Raises:
        ValueError: the file is missing or lacks a wanted column.
    """
    fs = HadoopFs(spark)
    if not fs.exists(path):
        raise ValueError(f"user features file {path} does not exist; set data_config.user_features_path")
    if path.endswith(".parquet"):
        df = spark.read.parquet(path)
    else:
        df = spark.read.option("header", True).option("inferSchema", False).csv(path)
    check_columns(path, df.columns, ["user_id", *columns])
    out = df.select(F.col("user_id").try_cast(T.LongType()).alias("user_id"),
                    *[F.trim(F.col(c).cast(T.StringType())).alias(c) for c in columns])
    out = out.filter(F.col("user_id").isNotNull())
    if not columns:
        return out.dropDuplicates(["user_id"])
    rank = F.row_number().over(Window.partitionBy("user_id").orderBy(*columns))
    return out.withColumn("_rank", rank).filter(F.col("_rank") == 1).drop("_rank")
