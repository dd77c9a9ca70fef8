"""Contextual vocabulary: ids stable between days, new values appended, unseen values -> reserved id 0."""

from __future__ import annotations

import pytest

from components.data.vocab import (
    RESERVED_ID,
    apply_vocab,
    distinct_values,
    extend_vocab,
    is_raw_id,
    load_vocab,
    save_vocab,
)


def test_extend_keeps_old_ids_and_appends_new_ones_sorted():
    first = extend_vocab({}, {"degree": ["full_active", "UNKNOWN", None, "full_active"]})
    assert first == {"degree": {"UNKNOWN": 1, "full_active": 2}}
    second = extend_vocab(first, {"degree": ["low_active", "full_active", "high_active"], "range": ["[1,5)"]})
    assert second == {"degree": {"UNKNOWN": 1, "full_active": 2, "high_active": 3, "low_active": 4},
                      "range": {"[1,5)": 1}}
    assert first == {"degree": {"UNKNOWN": 1, "full_active": 2}}, "the input is not changed"
    assert is_raw_id("user_id") and not is_raw_id("user_active_degree")


@pytest.mark.spark
def test_saved_vocab_maps_values_and_unseen_to_zero(spark, tmp_path):
    frame = spark.createDataFrame([(1, "full_active", "-124"), (2, "UNKNOWN", "1"), (3, None, "1")],
                                  "user_id bigint, degree string, streamer string")
    vocab = extend_vocab({}, distinct_values(frame, ["degree", "streamer"]))
    save_vocab(spark, str(tmp_path), vocab)
    assert load_vocab(spark, str(tmp_path)) == vocab == {"degree": {"UNKNOWN": 1, "full_active": 2},
                                                         "streamer": {"-124": 1, "1": 2}}
    later = spark.createDataFrame([(4, "brand_new", "-124"), (1, "full_active", "1")],
                                  "user_id bigint, degree string, streamer string")
    mapped = apply_vocab(later, load_vocab(spark, str(tmp_path)), ["user_id", "degree", "streamer"])
    assert [tuple(r) for r in mapped.orderBy("user_id").collect()] == [(1, 2, 2), (4, RESERVED_ID, 1)]
    assert [tuple(r) for r in apply_vocab(frame, vocab, ["degree"]).orderBy("user_id").collect()] == \
        [(1, 2, "-124"), (2, 1, "1"), (3, RESERVED_ID, "1")]
