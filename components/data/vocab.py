"""Stable integer ids for categorical contextual values ("UNKNOWN", "[100,1k)", "-124", ...).

The mapping is saved as JSON (``{work_dir}/vocab/contextual.json``) and reused, so ids never change between
days: values already known keep their id, new values get the next ids (appended in sorted order, so one build
is deterministic), and a value never seen (or missing) maps to the reserved id 0. Numeric id columns
(``user_id``, any ``*_id``) are not mapped: they stay as they are.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from itertools import chain

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from components.data.spark import HadoopFs

RESERVED_ID = 0  # unseen or missing values
VOCAB_FILE = "vocab/contextual.json"

Vocabulary = dict[str, dict[str, int]]  # column -> {value text: id >= 1}


def is_raw_id(column: str) -> bool:
    """Numeric id columns stay as they are; every other contextual column is categorical."""
    return column == "user_id" or column.endswith("_id")


def extend_vocab(vocab: Mapping[str, Mapping[str, int]], values: Mapping[str, Iterable[str | None]]) -> Vocabulary:
    """Returns a copy of ``vocab`` with the new values of each column appended.

    Args:
        vocab: the saved mapping (may be empty).
        values: column -> values seen now; None is skipped (it maps to RESERVED_ID).
    Returns:
        the extended mapping: old ids unchanged, new values numbered from max id + 1 in sorted order.
    """
    out = {c: dict(m) for c, m in vocab.items()}
    for column, seen in values.items():
        mapping = out.setdefault(column, {})
        new = sorted({v for v in seen if v is not None} - mapping.keys())
        start = max(mapping.values(), default=RESERVED_ID) + 1
        mapping.update({v: start + i for i, v in enumerate(new)})
    return out


def load_vocab(spark: SparkSession, work_dir: str) -> Vocabulary:
    """The saved mapping under ``work_dir`` (empty when none was saved yet)."""
    text = HadoopFs(spark).read_text(f"{work_dir.rstrip('/')}/{VOCAB_FILE}")
    if text is None:
        return {}
    return {c: {v: int(i) for v, i in m.items()} for c, m in json.loads(text)["columns"].items()}


def save_vocab(spark: SparkSession, work_dir: str, vocab: Mapping[str, Mapping[str, int]]) -> str:
    """Writes the mapping atomically; returns its URI."""
    uri = f"{work_dir.rstrip('/')}/{VOCAB_FILE}"
    body = {"reserved_id": RESERVED_ID, "note": "value -> id; unseen or missing values map to reserved_id",
            "columns": {c: dict(sorted(m.items(), key=lambda kv: kv[1])) for c, m in sorted(vocab.items())}}
    HadoopFs(spark).write_text(uri, json.dumps(body, indent=1, ensure_ascii=False) + "\n")
    return uri


def distinct_values(df: DataFrame, columns: Sequence[str]) -> dict[str, list[str]]:
    """The distinct non-null values of each categorical column (small: only the values reach the driver)."""
    if not columns:
        return {}
    stacked = df.select(F.explode(F.array(*[F.struct(F.lit(c).alias("column"), F.col(c).alias("value"))
                                            for c in columns])).alias("cv")).select("cv.*")
    out: dict[str, list[str]] = {c: [] for c in columns}
    for row in stacked.filter(F.col("value").isNotNull()).distinct().collect():
        out[row["column"]].append(row["value"])
    return out


def apply_vocab(df: DataFrame, vocab: Mapping[str, Mapping[str, int]], columns: Sequence[str]) -> DataFrame:
    """Replaces each categorical column's text by its id (int64); unknown and null values become 0.

    Raw id columns (``is_raw_id``) in ``columns`` are cast to int64 and otherwise left alone.
    """
    selected = []
    for column in df.columns:
        if column not in columns:
            selected.append(F.col(column))
        elif is_raw_id(column):
            selected.append(F.col(column).try_cast(T.LongType()).alias(column))
        else:
            mapping = vocab.get(column, {})
            if mapping:
                lookup = F.create_map(*chain.from_iterable((F.lit(v), F.lit(i)) for v, i in mapping.items()))
                value = F.try_element_at(lookup, F.col(column).cast(T.StringType()))
            else:
                value = F.lit(None)
            selected.append(F.coalesce(value, F.lit(RESERVED_ID)).cast(T.LongType()).alias(column))
    return df.select(*selected)
