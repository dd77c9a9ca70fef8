"""Side features of a video, written beside its id in the history and the candidate lists (docs/design.md §4.3).

One kind today, ``SIDE_FEATURES`` in ``components/id_features.py``: ``video_tag`` (history) / ``item_video_tag``
(candidates), the first id of the video's comma-separated ``tag`` in the video table
(``data_config.video_features_path``). A video without a row or without a tag gets ``MISSING_SIDE_VALUE``.
The model matches a candidate's value against its recent history's (hstu_model/history_summary.py: side_match).
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from components.data.sources import check_columns
from components.data.spark import HadoopFs
from components.id_features import MISSING_SIDE_VALUE


def read_side_table(spark: SparkSession, path: str, column: str) -> DataFrame:
    """[video_id int64, value int64] from the video table: ``column``'s first comma-separated id, one row per
    video (the smallest value when a video appears twice); rows with an unparsable video_id are dropped.

    Raises:
        ValueError: the file is missing or lacks ``video_id`` / ``column``.
    """
    if not HadoopFs(spark).exists(path):
        raise ValueError(f"video features file {path} does not exist; set data_config.video_features_path")
    df = spark.read.option("header", True).option("inferSchema", False).csv(path)
    check_columns(path, df.columns, ["video_id", column])
    first = F.trim(F.split(F.col(column).cast(T.StringType()), ",").getItem(0)).try_cast(T.LongType())
    out = df.select(F.col("video_id").try_cast(T.LongType()).alias("video_id"),
                    F.coalesce(first, F.lit(MISSING_SIDE_VALUE).cast("bigint")).alias("value"))
    return out.filter(F.col("video_id").isNotNull()).groupBy("video_id").agg(F.min("value").alias("value"))


def _values_of(samples: DataFrame, ids: str, table: DataFrame, out: str) -> DataFrame:
    """[user_id, out]: the value of each id in the list column ``ids``, in its order (users with a non-empty list)."""
    exploded = samples.select("user_id", F.posexplode(ids).alias("pos", "video_id"))
    value = F.coalesce(F.col("value"), F.lit(MISSING_SIDE_VALUE).cast("bigint")).alias("v")
    valued = exploded.join(table, "video_id", "left").select("user_id", F.struct("pos", value).alias("e"))
    # Struct order is (pos, v): sorting restores the list's order.
    per_user = valued.groupBy("user_id").agg(F.array_sort(F.collect_list("e")).alias("e"))
    return per_user.select("user_id", F.col("e")["v"].alias(out))


def with_side_feature(samples: DataFrame, table: DataFrame, *, history_ids: str, candidate_ids: str,
                      history_out: str, candidate_out: str) -> DataFrame:
    """``samples`` plus the side feature's lists beside the history's and the candidates' video ids."""
    empty = F.array().cast(T.ArrayType(T.LongType(), containsNull=False))
    history = _values_of(samples, history_ids, table, history_out)
    candidates = _values_of(samples, candidate_ids, table, candidate_out)
    joined = samples.join(history, "user_id", "left").join(candidates, "user_id", "left")
    return joined.withColumn(history_out, F.coalesce(F.col(history_out), empty))
