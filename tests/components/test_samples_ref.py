"""Property test: Spark and the pandas reference agree on seeded random event logs.

The logs hold users with no history, users with more than max_uih_len events, events exactly at window
boundaries (first and last millisecond of a day), timestamp ties, duplicates and bad rows.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.data.sample_names import SampleNames
from components.data.samples import build_samples
from components.data.samples_ref import build_samples_ref
from tests.components.event_logs import (
    CONTEXTUAL,
    day_ms,
    event,
    read_samples,
    write_day,
    write_user_features,
)

pytestmark = pytest.mark.spark

START = date(2022, 4, 8)
DEGREES = ("full_active", "high_active", "UNKNOWN", "middle_active")
RANGES = ("[100,1k)", "(0,10]", "500+", "730+")


def random_day(rng: np.random.Generator, day: date, users: int) -> list[dict]:
    base, rows = day_ms(day), []
    for user in range(users):
        times = []
        for _ in range(int(rng.integers(0, 7))):
            kind = rng.random()
            if kind < 0.15:
                t = base  # first millisecond of the window
            elif kind < 0.25:
                t = base + 86_399_999  # last millisecond
            elif kind < 0.45 and times:
                t = times[int(rng.integers(len(times)))]  # a tie
            else:
                t = base + int(rng.integers(86_400_000))
            times.append(t)
            rows.append(event(user, int(rng.integers(1, 9)), t, weight=int(rng.integers(256)),
                              play_ms=int(rng.integers(0, 20_000)), duration_ms=int(rng.integers(0, 30_000))))
    extra = [dict(r, play_time_ms=r["play_time_ms"] + 7) for r in rows[: len(rows) // 6]]  # duplicates
    bad = [event(0, 1, base + 5, play_ms=-1), event(1, -3, base + 9), event(2, 4, base + 86_400_000)]
    out = rows + extra + bad
    return [out[i] for i in rng.permutation(len(out))]


def features(rng: np.random.Generator, users: int) -> list[dict]:
    # User 0 has no features row: its contextual ids are 0.
    return [{"user_id": u, "user_active_degree": DEGREES[int(rng.integers(4))],
             **{c: RANGES[int(rng.integers(4))] for c in CONTEXTUAL[1:]}} for u in range(1, users)]


def mapped_features(rows: list[dict], vocab_file: Path) -> pd.DataFrame:
    vocab = json.loads(vocab_file.read_text())["columns"]
    frame = pd.DataFrame(rows)
    for c in CONTEXTUAL:
        frame[c] = frame[c].map(vocab[c]).astype("int64")
    return frame


# The video table of the side feature: several tags, an empty tag, a duplicated video (the smaller first tag wins),
# an unparsable id; video 8 has no row. Videos 1-8 are the random logs' videos.
VIDEO_TABLE = "video_id,tag\n1,\"12,3\"\n2,7\n3,\n4,12\n4,5\nx,9\n5,7\n6,\" 40 \"\n7,2\n"
VIDEO_TAGS = {1: 12, 2: 7, 3: -1, 4: 5, 5: 7, 6: 40, 7: 2}


def with_video_tag(config):
    groups = dataclasses.replace(config.model.feature_groups, uih=("video_id", "video_tag"),
                                 candidate=("item_video_id", "item_video_tag"))
    return config.replace(model=dataclasses.replace(config.model, feature_groups=groups))


# counters: item_counter_days; 2 with the first window at START + 1 reaches a day before the log.
@pytest.mark.parametrize("seed,fmt,window_days,mode,side,counters", [
    (0, "csv", 1, "WINDOW_START", False, 0), (1, "parquet", 2, "WINDOW_START", True, 2),
    (2, "csv", 1, "QUERY_TIME", True, 1)])
def test_spark_matches_reference_on_random_logs(spark, make_config, tmp_path, seed, fmt, window_days, mode, side,
                                                counters):
    rng, users, days = np.random.default_rng(seed), 7, 5
    all_rows = []
    for i in range(days):
        day = START + timedelta(days=i)
        rows = random_day(rng, day, users)
        write_day(tmp_path / "raw" / "events", day, rows, fmt=fmt)
        all_rows += [dict(r, dt=day) for r in rows]
    feats = features(rng, users)
    write_user_features(tmp_path / "raw" / "user_features.csv", feats)
    config = make_config(max_uih_len=4, max_candidates=3, max_bad_row_fraction=1.0, window_days=window_days,
                         events_format=fmt, history_mode=mode, item_counter_days=counters,
                         video_features_path=str(tmp_path / "raw" / "videos.csv") if side else "")
    if side:
        (tmp_path / "raw" / "videos.csv").write_text(VIDEO_TABLE)
        config = with_video_tag(config)
    starts = [START + timedelta(days=1 + window_days * k) for k in range(2)]
    build_samples(config=config, window_starts=starts, spark=spark)
    raw = pd.DataFrame(all_rows)
    contextual = mapped_features(feats, Path(config.data.work_dir) / "vocab" / "contextual.json")
    for start in starts:
        expected = build_samples_ref(raw, contextual, window_start=start, window_days=window_days,
                                     max_uih_len=4, max_candidates=3,
                                     names=SampleNames(contextual=("user_id", *CONTEXTUAL),
                                                       side_feature="video_tag" if side else "",
                                                       item_side_feature="item_video_tag" if side else ""),
                                     query_time=mode == "QUERY_TIME", side_values=VIDEO_TAGS if side else None,
                                     item_counter_days=counters)
        got = read_samples(config.data.work_dir, start)
        assert len(got) >= 3, "the random log should give several samples"
        pd.testing.assert_frame_equal(got, expected, check_dtype=False)
    if side:  # every video id has its tag beside it, -1 for video 8 (no row) and 3 (no tag)
        for ids, tags in zip(got["item_video_id"], got["item_video_tag"]):
            assert tags == [VIDEO_TAGS.get(v, -1) for v in ids]
    if counters:  # one array per candidate, and some candidate's video was seen by someone before it
        assert all(len(c) == len(v) for c, v in zip(got["item_counts"], got["item_video_id"], strict=True))
        assert max(c[0] for row in got["item_counts"] for c in row) > 0
    long_history = expected["video_id"].map(len).max()
    assert long_history == (4 + 3 if mode == "QUERY_TIME" else 4), "some user should hit max_uih_len"
    if mode == "QUERY_TIME":  # the history ends with the candidates' own events, actions included
        for _, row in got.iterrows():
            n = len(row["item_video_id"])
            assert list(row["video_id"][-n:]) == list(row["item_video_id"])
            assert list(row["action_weight"][-n:]) == list(row["item_action_weight"])
