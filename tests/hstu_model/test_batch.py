import dataclasses

import numpy as np
import pyarrow as pa
import pytest
import torch
from samples import make_rows, small_config

from hstu_model.batch import collate
from hstu_model.id_rows import stable_hash


def _assert_same_batch(a, b):
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, dict):
            assert x.keys() == y.keys()
            for k in x:
                torch.testing.assert_close(x[k], y[k])
        else:
            torch.testing.assert_close(x, y)


def test_collate_builds_jagged_tensors_with_table_rows():
    config = small_config()
    rows = make_rows(5, seed=1, min_history=0)
    batch = collate(rows, config)
    assert batch.batch_size == 5
    assert batch.uih_lengths.tolist() == [len(r["video_id"]) for r in rows]
    assert batch.num_candidates == sum(len(r["item_video_id"]) for r in rows)
    assert batch.num_tokens == 5 * 6 + sum(len(r["video_id"]) + len(r["item_video_id"]) for r in rows)
    size = {t.name: t.num_embeddings for t in config.embedding_tables}["user_id"]
    assert batch.contextual["user_id"].tolist() == stable_hash(np.array([r["user_id"] for r in rows]), size).tolist()
    assert batch.uih_ids["video_id"].tolist() == [v for r in rows for v in r["video_id"]]  # rows as given
    assert batch.user_ids.tolist() == [r["user_id"] for r in rows for _ in r["item_video_id"]]
    assert batch.labels.tolist() == [a for r in rows for a in r["item_action_weight"]]
    assert batch.uih_offsets[-1].item() == batch.uih_timestamp.numel()
    assert batch.uih_watchtime.dtype == torch.float32 and batch.uih_timestamp.dtype == torch.int64


def test_collate_accepts_pyarrow_table_and_record_batch():
    config = small_config()
    rows = make_rows(4, seed=2)
    expected = collate(rows, config)
    table = pa.Table.from_pylist(rows)
    _assert_same_batch(collate(table, config), expected)
    _assert_same_batch(collate(table.to_batches()[0], config), expected)


def test_collate_without_labels_gives_none_labels():
    rows = [{k: v for k, v in r.items() if not k.startswith("item_action") and k != "item_watch_time"}
            for r in make_rows(3, seed=3)]
    batch = collate(rows, small_config())
    assert batch.labels is None and batch.watch_time is None


def test_collate_names_missing_column_and_bad_lengths():
    config = small_config()
    rows = make_rows(2, seed=4, min_history=2)
    del rows[1]["action_timestamp"]
    with pytest.raises(ValueError, match="action_timestamp"):
        collate(rows, config)
    rows = make_rows(2, seed=4, min_history=2)
    rows[1]["watch_time"] = rows[1]["watch_time"][:-1]
    with pytest.raises(ValueError, match="row 1.*watch_time"):
        collate(rows, config)


def test_collate_rejects_sample_longer_than_max_seq_len():
    config = dataclasses.replace(small_config(), max_seq_len=12)
    rows = make_rows(1, seed=5, min_history=10, max_history=10)
    with pytest.raises(ValueError, match="exceeds max_seq_len 12"):
        collate(rows, config)


def test_batch_to_moves_every_tensor():
    batch = collate(make_rows(2, seed=6), small_config()).to("meta")
    assert batch.uih_timestamp.device.type == "meta" and batch.contextual["user_id"].device.type == "meta"
