"""Raw ids -> table rows (hstu_model/id_rows.py): vocabularies, the reserved row, stable hashing, no modulo."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest
from samples import make_rows, small_config

from hstu_model.batch import collate
from hstu_model.id_rows import RESERVED_ROW, IdRows, stable_hash


def _vocab_config(video_rows: int = 8):
    """small_config with the video table as an exact vocabulary of ``video_rows`` rows."""
    config = small_config()
    tables = tuple(dataclasses.replace(t, num_embeddings=video_rows) if t.name == "video_id" else t
                   for t in config.embedding_tables)
    return dataclasses.replace(config, embedding_tables=tables)


def test_ids_that_collide_under_modulo_get_distinct_rows():
    config = _vocab_config(video_rows=8)
    ids = np.array([3, 11, 19])  # all 3 modulo 8
    id_rows = IdRows(config, {"video_id": (ids, np.array([1, 2, 3]))})
    assert id_rows.rows("video_id", ids).tolist() == [1, 2, 3]
    assert id_rows.rows("item_video_id", np.array([19, 3])).tolist() == [3, 1]  # the shared table


def test_unseen_id_reads_the_reserved_row():
    config = _vocab_config()
    id_rows = IdRows(config, {"video_id": (np.array([5, 7]), np.array([1, 2]))})
    assert id_rows.rows("item_video_id", np.array([7, 6, 5, 1_000_000])).tolist() == [2, RESERVED_ROW, 1, RESERVED_ROW]
    empty = IdRows(config, {})  # a vocabulary table with no known id
    assert empty.rows("video_id", np.array([5, 7])).tolist() == [RESERVED_ROW, RESERVED_ROW]


def test_collate_maps_raw_ids_through_the_vocabulary():
    config = _vocab_config()
    rows = make_rows(3, seed=1, min_history=1)
    rows[0]["item_video_id"][0] = 999  # unseen
    known = sorted({v for r in rows for v in r["video_id"] + r["item_video_id"]} - {999})[:7]
    id_rows = IdRows(config, {"video_id": (np.array(known), np.arange(1, len(known) + 1))})
    batch = collate(rows, config, id_rows)
    expected = [known.index(v) + 1 if v in known else RESERVED_ROW for r in rows for v in r["item_video_id"]]
    assert batch.candidate_ids["item_video_id"].tolist() == expected
    assert batch.candidate_ids["item_video_id"][0].item() == RESERVED_ROW


def test_ids_outside_a_table_are_an_error_never_wrapped():
    config = _vocab_config(video_rows=8)
    rows = make_rows(2, seed=2, min_history=1)
    for r in rows:  # every id a row of the 8-row table, but one
        r["video_id"] = [v % 8 for v in r["video_id"]]
        r["item_video_id"] = [v % 8 for v in r["item_video_id"]]
    rows[1]["video_id"][0] = 8
    with pytest.raises(ValueError, match="feature 'video_id': id 8 is no row of table 'video_id' \\(8 rows\\)"):
        collate(rows, config)  # no vocabulary given: the ids must already be rows


def test_vocabulary_larger_than_its_table_is_refused():
    with pytest.raises(ValueError, match="outside \\[1, 8\\)"):
        IdRows(_vocab_config(video_rows=8), {"video_id": (np.arange(8), np.arange(1, 9))})
    with pytest.raises(ValueError, match="no vocabulary table"):
        IdRows(_vocab_config(), {"user_id": (np.array([1]), np.array([1]))})  # user_id is hashed here


def test_stable_hash_is_the_same_in_another_process():
    ids = np.array([0, 1, 2, 42, -7, 2**62, 7_654_321])
    here = stable_hash(ids, 1000).tolist()
    code = ("import numpy as np; from hstu_model.id_rows import stable_hash; "
            f"print(stable_hash(np.array({ids.tolist()}), 1000).tolist())")
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": "123", "PATH": "", **_pythonpath()}).stdout.strip()
    assert there == str(here)
    assert here == [535, 465, 110, 413, 752, 75, 825]  # splitmix64; fixed forever: changing it remaps every hashed table
    assert all(0 <= r < 1000 for r in here)


def test_hashed_rows_spread_consecutive_ids():
    rows = stable_hash(np.arange(10_000), 1024)
    assert len(np.unique(rows)) > 990  # a modulo would also fill them; a weak hash would cluster


def _pythonpath() -> dict[str, str]:
    import os

    return {"PYTHONPATH": os.environ.get("PYTHONPATH", "") + os.pathsep + os.getcwd()}
