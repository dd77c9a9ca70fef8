"""Readers: columns by header name, missing columns named, missing flags as 0, the ratings column mapping."""

from __future__ import annotations

import dataclasses
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from components.config import ActionRule, ColumnMapping
from components.data.samples import build_samples
from components.data.sources import read_events, read_user_features
from tests.components.event_logs import EVENT_COLUMNS, day_ms, event, read_samples, write_day

pytestmark = pytest.mark.spark

DAY = date(2022, 4, 9)
REAL_FEATURES = Path(__file__).resolve().parents[2] / "components/builtin_data/kuairand_pure/user_features_pure.csv"
RATINGS = ColumnMapping(user_id="user", video_id="item", time="unix_ts", time_unit="s", play_time_ms="",
                        duration_ms="", action_rules=(ActionRule("is_click", "true"),
                                                      ActionRule("is_like", "rating >= 4")))


def test_csv_columns_match_by_header_name_and_missing_flags_count_zero(spark, tmp_path):
    t = day_ms(DAY)
    write_day(tmp_path, DAY, [event(1, 10, t + 1, weight=3, play_ms=1500)], name="a")
    reordered = list(reversed(EVENT_COLUMNS))
    write_day(tmp_path, DAY, [event(2, 20, t + 2, weight=2 | 64)], columns=reordered, name="b")
    only_required = ["time_ms", "video_id", "user_id", "duration_ms", "play_time_ms", "is_click"]
    write_day(tmp_path, DAY, [event(3, 30, t + 3, weight=1 | 2)], columns=only_required, name="c")
    rows = read_events(spark, root=str(tmp_path), fmt="csv", days=[DAY]).orderBy("user_id").collect()
    got = [(r["user_id"], r["video_id"], r["time_ms"], r["action_weight"], r["dt"]) for r in rows]
    assert got == [(1, 10, t + 1, 3, DAY), (2, 20, t + 2, 66, DAY), (3, 30, t + 3, 1, DAY)]
    assert rows[0]["play_time_ms"] == 1500.0 and rows[0]["bad_parse"] is None


def test_file_without_a_required_column_fails_naming_file_and_column(spark, tmp_path):
    columns = [c for c in EVENT_COLUMNS if c != "duration_ms"]
    path = write_day(tmp_path, DAY, [event(1, 1, day_ms(DAY))], columns=columns, name="broken")
    with pytest.raises(ValueError, match=rf"{path.name}: missing required column 'duration_ms'"):
        read_events(spark, root=str(tmp_path), fmt="csv", days=[DAY])


def test_ratings_log_enters_through_the_column_mapping(spark, make_config, tmp_path):
    """The README's example: a ratings log `user, item, rating, unix_ts` with no code change."""
    s2 = day_ms(DAY) // 1000
    root = tmp_path / "ratings"
    prev = date(2022, 4, 8)
    write_day(root, prev, [{"user": 7, "item": 100, "rating": 5, "unix_ts": s2 - 60}], columns=["user", "item", "rating", "unix_ts"])
    write_day(root, DAY, [{"user": 7, "item": 101, "rating": 3, "unix_ts": s2 + 5},
                          {"user": 8, "item": 102, "rating": 4.5, "unix_ts": s2 + 9}],
              columns=["user", "item", "rating", "unix_ts"])
    rows = read_events(spark, root=str(root), fmt="csv", days=[DAY], mapping=RATINGS).orderBy("user_id").collect()
    assert [(r["user_id"], r["video_id"], r["time_ms"], r["action_weight"]) for r in rows] == \
        [(7, 101, (s2 + 5) * 1000, 1), (8, 102, (s2 + 9) * 1000, 3)]
    config = make_config(events_path=str(root), column_mapping=RATINGS)
    groups = dataclasses.replace(config.model.feature_groups, contextual=("user_id",))
    features = {*groups.contextual, *groups.uih, *groups.candidate}  # the tables follow the groups, as in a config
    tables = tuple(t for t in config.model.embedding_tables if set(t.feature_names) <= features)
    config = config.replace(model=dataclasses.replace(config.model, feature_groups=groups, embedding_tables=tables))
    build_samples(config=config, window_starts=[DAY], spark=spark)
    samples = read_samples(config.data.work_dir, DAY)
    assert samples["user_id"].tolist() == [7, 8]
    assert samples["video_id"].tolist() == [[100], []] and samples["action_weight"].tolist() == [[3], []]
    assert samples["item_action_weight"].tolist() == [[1], [3]]
    assert samples["item_query_time"].tolist() == [[s2 + 5], [s2 + 9]]


def test_real_user_features_keep_their_quirks(spark):
    columns = ["user_active_degree", "is_live_streamer", "fans_user_num_range"]
    feats = read_user_features(spark, str(REAL_FEATURES), columns).toPandas()
    assert len(feats) == 27_285 and feats["user_id"].is_unique
    assert (feats["user_active_degree"] == "UNKNOWN").sum() == 6
    assert "-124" in set(feats["is_live_streamer"]) and "[100,1k)" in set(feats["fans_user_num_range"])
    with pytest.raises(ValueError, match="missing required column 'no_such_column'"):
        read_user_features(spark, str(REAL_FEATURES), ["no_such_column"])
    assert isinstance(feats, pd.DataFrame)
