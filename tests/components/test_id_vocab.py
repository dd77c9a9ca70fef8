"""Id vocabularies (components/data/id_vocab.py) and the id statistics of the sample job, on hand-made ids."""

from __future__ import annotations

import dataclasses
import json
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from components.data.id_vocab import (
    TableVocab,
    extend_ids,
    model_vocab_text,
    parse_model_vocab,
    parse_vocab,
    read_id_vocab,
    snapshot,
    vocab_text,
)
from components.data.sample_stats import id_stats
from hstu_model.config import EmbeddingTableConfig
from hstu_model.id_rows import IdRows

D1, D2, D3 = date(2022, 4, 8), date(2022, 4, 9), date(2022, 4, 10)


def test_new_ids_are_appended_in_order_and_known_ids_keep_their_row():
    vocab, overflow = extend_ids({}, D1, {"video_id": np.array([30, 10, 20, 10])}, {"video_id": 100})
    assert vocab["video_id"] == TableVocab((10, 20, 30), ("2022-04-08",) * 3) and len(overflow["video_id"]) == 0
    vocab, _ = extend_ids(vocab, D2, {"video_id": np.array([25, 20, 5])}, {"video_id": 100})
    assert vocab["video_id"].ids == (10, 20, 30, 5, 25)  # rows 1, 2, 3 unchanged; 5 and 25 appended
    assert vocab["video_id"].first_seen == ("2022-04-08",) * 3 + ("2022-04-09",) * 2
    again, _ = extend_ids(vocab, D2, {"video_id": np.array([25, 20, 5])}, {"video_id": 100})
    assert again == vocab  # a rerun of a window changes nothing
    assert parse_vocab(vocab_text(vocab)) == vocab


def test_a_full_vocabulary_sends_new_ids_to_the_reserved_row_and_counts_them():
    rows = {"video_id": 4}  # rows 1..3 for ids, row 0 reserved
    vocab, overflow = extend_ids({}, D1, {"video_id": np.array([7, 3, 9, 1, 5])}, rows)
    assert vocab["video_id"].ids == (1, 3, 5) and overflow["video_id"].tolist() == [7, 9]
    vocab, overflow = extend_ids(vocab, D2, {"video_id": np.array([3, 2])}, rows)
    assert vocab["video_id"].ids == (1, 3, 5) and overflow["video_id"].tolist() == [2]


def test_a_window_rebuilt_after_a_later_one_moves_first_seen_back():
    vocab, _ = extend_ids({}, D2, {"video_id": np.array([4, 6])}, {"video_id": 10})
    vocab, _ = extend_ids(vocab, D1, {"video_id": np.array([6, 8])}, {"video_id": 10})
    assert vocab["video_id"].ids == (4, 6, 8)
    assert vocab["video_id"].first_seen == ("2022-04-09", "2022-04-08", "2022-04-08")


def test_a_model_knows_only_ids_seen_before_its_evaluation_window():
    vocab, _ = extend_ids({}, D1, {"video_id": np.array([10, 11])}, {"video_id": 10})
    vocab, _ = extend_ids(vocab, D2, {"video_id": np.array([11, 12])}, {"video_id": 10})
    known = snapshot(vocab, D2, {"video_id": 10})
    assert known["video_id"][0].tolist() == [10, 11] and known["video_id"][1].tolist() == [1, 2]
    assert snapshot(vocab, D1, {"video_id": 10})["video_id"][0].tolist() == []
    shrunk = snapshot(vocab, D3, {"video_id": 3})  # a table now smaller than the vocabulary keeps rows 1..2
    assert shrunk["video_id"][1].tolist() == [1, 2]
    parsed = parse_model_vocab(model_vocab_text(known))
    assert {t: (i.tolist(), r.tolist()) for t, (i, r) in parsed.items()} == {"video_id": ([10, 11], [1, 2])}


def test_id_stats_by_hand():
    tables = (EmbeddingTableConfig("video_id", 6, 8, ("video_id", "item_video_id")),
              EmbeddingTableConfig("user_id", 4, 8, ("user_id",), hashed=True))
    vocab, overflow = extend_ids({}, D1, {"video_id": np.array([1, 2])}, {"video_id": 6})
    counts = {"video_id": (np.array([1, 2, 3]), np.array([5, 1, 2])),  # 3 is new in D2
              "item_video_id": (np.array([2, 4, 5, 6, 7]), np.array([1, 1, 1, 1, 4])),
              "user_id": (np.array([1, 2, 3]), np.array([1, 1, 1]))}
    vocab, overflow = extend_ids(vocab, D2, {"video_id": np.array([1, 2, 3, 2, 4, 5, 6, 7])}, {"video_id": 6})
    assert vocab["video_id"].ids == (1, 2, 3, 4, 5) and overflow["video_id"].tolist() == [6, 7]
    stats = id_stats(counts, tables, vocab, overflow, D2)
    assert stats["video_id"] == {"table": "video_id", "mapping": "vocabulary", "rows": 6, "distinct_ids": 3,
                                 "occurrences": 8, "vocabulary_size": 5, "unseen_ids": 1, "oov_rate": 2 / 8,
                                 "overflow_ids": 0, "overflow_rate": 0.0}
    # 2 was known before D2; 4, 5 are new (rows 4, 5); 6, 7 found the vocabulary full
    assert stats["item_video_id"] == {"table": "video_id", "mapping": "vocabulary", "rows": 6, "distinct_ids": 5,
                                      "occurrences": 8, "vocabulary_size": 5, "unseen_ids": 4, "oov_rate": 7 / 8,
                                      "overflow_ids": 2, "overflow_rate": 5 / 8}
    # stable_hash([1, 2, 3], 4) == [1, 2, 1]: users 1 and 3 share row 1
    assert stats["user_id"] == {"table": "user_id", "mapping": "hash", "rows": 4, "distinct_ids": 3,
                                "occurrences": 3, "colliding_ids": 2, "collision_rate": 2 / 3}


@pytest.mark.spark
def test_sample_job_grows_the_vocabulary_and_reports_id_statistics(spark, make_config, tmp_path):
    from components.data.samples import build_samples
    from tests.components.test_samples import write_hand_case

    write_hand_case(tmp_path)
    config = make_config(max_uih_len=2, max_candidates=2, max_bad_row_fraction=0.5)
    # video_id: 5 ids fit (row 0 reserved); user_id hashed into 4 rows, where users 1 and 3 share row 1
    tables = tuple(dataclasses.replace(t, num_embeddings=6) if t.name == "video_id"
                   else dataclasses.replace(t, num_embeddings=4, hashed=True) if t.name == "user_id" else t
                   for t in config.model.embedding_tables)
    config = config.replace(model=dataclasses.replace(config.model, embedding_tables=tables))
    build_samples(config=config, window_starts=[D2, D3], spark=spark)
    work = Path(config.data.work_dir)
    vocab = read_id_vocab(work)
    # D2's samples hold videos 10, 11 (history), 12, 13, 20 (candidates): the five rows. D3 adds 14, 15, 30, 31:
    # no room left, so they read row 0.
    assert vocab["video_id"] == TableVocab((10, 11, 12, 13, 20), ("2022-04-09",) * 5)
    assert "user_id" not in vocab  # hashed: no vocabulary
    d2 = json.loads((work / "stats" / "dt=2022-04-09.json").read_text())["ids"]
    assert d2["item_video_id"]["overflow_ids"] == 0 and d2["item_video_id"]["oov_rate"] == 1.0
    assert d2["user_id"]["collision_rate"] == 0.0  # users 1, 2 -> rows 1, 2
    d3 = json.loads((work / "stats" / "dt=2022-04-10.json").read_text())["ids"]
    # history of D3: u1 [13, 14], u3 [30]; 13 known since D2, 14 and 30 new and past the full vocabulary
    assert d3["video_id"] == {"table": "video_id", "mapping": "vocabulary", "rows": 6, "distinct_ids": 3,
                              "occurrences": 3, "vocabulary_size": 5, "unseen_ids": 2, "oov_rate": 2 / 3,
                              "overflow_ids": 2, "overflow_rate": 2 / 3}
    assert d3["item_video_id"]["overflow_ids"] == 2 and d3["item_video_id"]["overflow_rate"] == 1.0
    assert d3["user_id"] == {"table": "user_id", "mapping": "hash", "rows": 4, "distinct_ids": 2, "occurrences": 2,
                             "colliding_ids": 2, "collision_rate": 1.0}
    # A model evaluated on D3 reads D2's videos from their own rows and everything else from row 0.
    id_rows = IdRows(config.model, snapshot(vocab, D3, {"video_id": 6}))
    assert id_rows.rows("item_video_id", np.array([12, 13, 20, 15, 31])).tolist() == [3, 4, 5, 0, 0]
    # Rebuilding D2 changes neither the vocabulary nor its rows.
    build_samples(config=config, window_starts=[D2], spark=spark)
    assert read_id_vocab(work) == vocab
