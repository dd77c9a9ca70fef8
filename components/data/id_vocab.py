"""Exact vocabularies of the id features: raw id -> embedding row, built from the samples (docs/design.md §4.3).

One vocabulary per table whose config gives ``num_buckets`` (``video_id`` and ``item_video_id`` share one),
saved as ``{work_dir}/vocab/ids.json`` and grown by the sample job window after window, in the spirit of the
contextual vocabulary (``vocab.py``): an id keeps its row forever, the new ids of a window are appended in
ascending order (so one build is deterministic), and row 0 is reserved. A full vocabulary (``num_buckets - 1``
ids) takes no more ids: the rest read row 0 and are counted as overflow; nothing wraps around.

Each id also keeps the first window whose samples held it. A model trained for evaluation window ``D`` takes
the ids first seen before ``D`` (``snapshot``): an id that appears first in ``D`` (or later) was never
trained and reads the reserved row, for the new version and for a version scored later alike. Hashed tables
(``hash_bucket_size``) keep nothing here; their collisions are counted in the statistics (``sample_stats.py``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hstu_model.config import EmbeddingTableConfig, ModelConfig
from hstu_model.id_rows import RESERVED_ROW, IdRows

if TYPE_CHECKING:  # the trainer reads vocabularies without Spark installed
    from pyspark.sql import SparkSession

ID_VOCAB_FILE = "vocab/ids.json"


@dataclass(frozen=True)
class TableVocab:
    """The known raw ids of one table in row order (``ids[k]`` has row ``k + 1``), each with its first window."""

    ids: tuple[int, ...] = ()
    first_seen: tuple[str, ...] = field(default=())  # ISO start of the first window whose samples held the id

    def rows(self) -> np.ndarray:
        """int64 ``[N]`` rows of ``ids``."""
        return np.arange(1, len(self.ids) + 1, dtype=np.int64)


IdVocabulary = dict[str, TableVocab]  # table name -> vocabulary


def vocabulary_tables(tables: tuple[EmbeddingTableConfig, ...]) -> dict[str, int]:
    """Table name -> rows, for the tables mapped through a vocabulary (not hashed)."""
    return {t.name: t.num_embeddings for t in tables if not t.hashed}


def extend_ids(vocab: Mapping[str, TableVocab], window: date, seen: Mapping[str, np.ndarray],
               rows: Mapping[str, int]) -> tuple[IdVocabulary, dict[str, np.ndarray]]:
    """Adds the ids of one window's samples.

    Args:
        vocab: the saved vocabularies (may be empty). window: the window's start.
        seen: table -> raw ids (int64, any order, repeats allowed) in the window's samples.
        rows: table -> rows of the table (``num_buckets``); the vocabulary holds at most ``rows - 1`` ids.
    Returns:
        (the grown vocabularies: known ids keep their row, and their first window becomes the earlier of the
        two; new ids appended in ascending order while there is room), table -> overflow ids int64 (sorted):
        new ids that found the vocabulary full and read row 0.
    """
    out, overflow, day = dict(vocab), {}, window.isoformat()
    for table, ids in seen.items():
        old = vocab.get(table, TableVocab())
        index = {raw: k for k, raw in enumerate(old.ids)}
        distinct = np.unique(np.asarray(ids, np.int64)).tolist()
        first = list(old.first_seen)
        for raw in distinct:
            k = index.get(raw)
            if k is not None and day < first[k]:  # a window rebuilt after a later one: the earlier window counts
                first[k] = day
        new = [raw for raw in distinct if raw not in index]
        room = max(rows[table] - 1 - len(old.ids), 0)
        out[table] = TableVocab(old.ids + tuple(new[:room]), tuple(first) + (day,) * len(new[:room]))
        overflow[table] = np.asarray(new[room:], np.int64)
    return out, overflow


def snapshot(vocab: Mapping[str, TableVocab], before: date,
             rows: Mapping[str, int]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """What a model evaluated on window ``before`` knows: table -> (raw ids int64 [N], rows int64 [N]).

    Only ids first seen in a window before ``before`` and rows that fit the table (a config that shrank a table
    since the vocabulary grew) are kept; every other id reads the reserved row.
    """
    out = {}
    day = before.isoformat()
    for table, size in rows.items():
        v = vocab.get(table, TableVocab())
        keep = (np.asarray(v.first_seen, dtype=object) < day) & (v.rows() < size) if v.ids else np.zeros(0, bool)
        out[table] = (np.asarray(v.ids, np.int64)[keep], v.rows()[keep])
    return out


def known_id_rows(model: ModelConfig, work_dir: str | Path, before: date) -> IdRows:
    """The raw id -> row mapping of a model trained for window ``before``: the ids ``work_dir``'s samples showed
    in earlier windows.

    Raises:
        ValueError: a vocabulary table knows no id (samples built before id vocabularies existed, or no
            vocabulary file at all): every id would read the reserved row, a model that learns nothing from ids.
    """
    id_rows = IdRows(model, snapshot(read_id_vocab(work_dir), before, vocabulary_tables(model.embedding_tables)))
    empty = sorted(table for table, size in id_rows.sizes().items() if size == 0)
    if empty:
        raise ValueError(f"embedding tables {empty} know no id before window {before}: {work_dir}/{ID_VOCAB_FILE} "
                         "has no entry for them. Samples built before id vocabularies existed lack it: rebuild "
                         "the training windows' samples (`hstu samples --window D`) and train again")
    return id_rows


def vocab_text(vocab: Mapping[str, TableVocab]) -> str:
    """The JSON text of ``vocab`` (the file's and the run artifact's format)."""
    body = {"reserved_row": RESERVED_ROW,
            "note": "ids[k] has row k + 1; first_seen[k] is the first window whose samples held it; "
                    "every other id reads reserved_row",
            "tables": {t: {"ids": list(v.ids), "first_seen": list(v.first_seen)} for t, v in sorted(vocab.items())}}
    return json.dumps(body, separators=(",", ":")) + "\n"


def parse_vocab(text: str | None) -> IdVocabulary:
    """The vocabularies of ``vocab_text`` output (empty for None)."""
    if text is None:
        return {}
    tables = json.loads(text)["tables"]
    return {t: TableVocab(tuple(int(i) for i in v["ids"]), tuple(v["first_seen"])) for t, v in tables.items()}


def load_id_vocab(spark: SparkSession, work_dir: str) -> IdVocabulary:
    """The saved vocabularies under ``work_dir`` (empty when none was saved yet)."""
    from components.data.spark import HadoopFs

    return parse_vocab(HadoopFs(spark).read_text(f"{work_dir.rstrip('/')}/{ID_VOCAB_FILE}"))


def save_id_vocab(spark: SparkSession, work_dir: str, vocab: Mapping[str, TableVocab]) -> str:
    """Writes the vocabularies atomically; returns the URI."""
    from components.data.spark import HadoopFs

    uri = f"{work_dir.rstrip('/')}/{ID_VOCAB_FILE}"
    HadoopFs(spark).write_text(uri, vocab_text(vocab))
    return uri


def read_id_vocab(work_dir: str | Path) -> IdVocabulary:
    """The saved vocabularies of a local ``work_dir``, without Spark (the trainer's side)."""
    path = Path(work_dir) / ID_VOCAB_FILE
    return parse_vocab(path.read_text() if path.is_file() else None)


def model_vocab_text(known: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> str:
    """The JSON text of one model's mapping (``snapshot`` output): what a run freezes and logs with its model."""
    body = {"reserved_row": RESERVED_ROW, "note": "ids[k] reads row rows[k]; every other id reads reserved_row",
            "tables": {t: {"ids": ids.tolist(), "rows": rows.tolist()} for t, (ids, rows) in sorted(known.items())}}
    return json.dumps(body, separators=(",", ":")) + "\n"


def parse_model_vocab(text: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The mapping of ``model_vocab_text`` output: table -> (raw ids int64 [N], rows int64 [N])."""
    return {t: (np.asarray(v["ids"], np.int64), np.asarray(v["rows"], np.int64))
            for t, v in json.loads(text)["tables"].items()}
