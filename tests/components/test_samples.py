"""The sample builder on a tiny hand-worked case (three users, two windows) with exact expected rows."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from components.data.samples import build_samples, window_starts_between
from tests.components.event_logs import day_ms, event, read_samples, write_day, write_user_features

pytestmark = pytest.mark.spark

D1, D2, D3 = date(2022, 4, 8), date(2022, 4, 9), date(2022, 4, 10)
S1, S2, S3 = day_ms(D1) // 1000, day_ms(D2) // 1000, day_ms(D3) // 1000


def write_hand_case(tmp_path: Path) -> None:
    """u1: history, a tie and a window boundary, 3 events in a window capped at 2; u2: no history, no
    features; u3: a duplicate and a negative duration in the second window."""
    root = tmp_path / "raw" / "events"
    write_day(root, D1, [event(1, 10, day_ms(D1) + 1_000_000, weight=1, play_ms=1500),
                         event(1, 11, day_ms(D1) + 2_000_000, weight=2, play_ms=2500),
                         event(3, 30, day_ms(D1) + 5_000, weight=64, play_ms=30_000)])
    write_day(root, D2, [event(1, 14, day_ms(D2) + 500_000, weight=0, play_ms=400),  # tie with 13: 13 first
                         event(1, 13, day_ms(D2) + 500_000, weight=1, play_ms=300),
                         event(1, 12, day_ms(D2), weight=3, play_ms=200),  # exactly at the window start
                         event(2, 20, day_ms(D2) + 100_000, weight=128, play_ms=2000)])
    write_day(root, D3, [event(1, 15, day_ms(D3) + 86_399_999, weight=4, play_ms=999),  # last ms of the window
                         event(3, 31, day_ms(D3) + 7_000, weight=1, play_ms=1000),
                         event(3, 31, day_ms(D3) + 7_000, weight=1, play_ms=1000),  # duplicate
                         event(3, 32, day_ms(D3) + 8_000, play_ms=-5)])  # negative duration
    write_user_features(tmp_path / "raw" / "user_features.csv", [
        {"user_id": 1, "user_active_degree": "full_active", "follow_user_num_range": "[100,1k)",
         "fans_user_num_range": "500+", "friend_user_num_range": "0", "register_days_range": "730+"},
        {"user_id": 3, "user_active_degree": "UNKNOWN", "follow_user_num_range": "(0,10]",
         "fans_user_num_range": "500+", "friend_user_num_range": "0", "register_days_range": "31-60"}])


EXPECTED_D2 = [
    {"user_id": 1, "user_active_degree": 2, "follow_user_num_range": 2, "fans_user_num_range": 1,
     "friend_user_num_range": 1, "register_days_range": 2,
     "video_id": [10, 11], "action_weight": [1, 2], "watch_time": [1.5, 2.5],
     "action_timestamp": [S1 + 1000, S1 + 2000],
     "item_video_id": [12, 13], "item_query_time": [S2, S2 + 500], "item_action_weight": [3, 1],
     "item_watch_time": [0.2, 0.3]},
    {"user_id": 2, "user_active_degree": 0, "follow_user_num_range": 0, "fans_user_num_range": 0,
     "friend_user_num_range": 0, "register_days_range": 0,
     "video_id": [], "action_weight": [], "watch_time": [], "action_timestamp": [],
     "item_video_id": [20], "item_query_time": [S2 + 100], "item_action_weight": [128], "item_watch_time": [2.0]},
]
EXPECTED_D3 = [
    {"user_id": 1, "user_active_degree": 2, "follow_user_num_range": 2, "fans_user_num_range": 1,
     "friend_user_num_range": 1, "register_days_range": 2,
     "video_id": [13, 14], "action_weight": [1, 0], "watch_time": [0.3, 0.4],
     "action_timestamp": [S2 + 500, S2 + 500],
     "item_video_id": [15], "item_query_time": [S3 + 86_399], "item_action_weight": [4], "item_watch_time": [0.999]},
    {"user_id": 3, "user_active_degree": 1, "follow_user_num_range": 1, "fans_user_num_range": 1,
     "friend_user_num_range": 1, "register_days_range": 1,
     "video_id": [30], "action_weight": [64], "watch_time": [30.0], "action_timestamp": [S1 + 5],
     "item_video_id": [31], "item_query_time": [S3 + 7], "item_action_weight": [1], "item_watch_time": [1.0]},
]


def _expected(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows)


def test_hand_worked_windows_give_exact_rows(spark, make_config, tmp_path):
    write_hand_case(tmp_path)
    config = make_config(max_uih_len=2, max_candidates=2, max_bad_row_fraction=0.5)
    results = build_samples(config=config, window_starts=[D3, D2], spark=spark)  # order does not matter
    assert [r.window_start for r in results] == [D2, D3]
    work = config.data.work_dir
    pd.testing.assert_frame_equal(read_samples(work, D2), _expected(EXPECTED_D2), check_dtype=False)
    pd.testing.assert_frame_equal(read_samples(work, D3), _expected(EXPECTED_D3), check_dtype=False)
    assert results[0].dropped_candidates == 1 and results[0].quarantined == 0
    assert results[1].quarantined == 2 and results[1].history_source.startswith("state dt=2022-04-10")
    quarantine = pd.read_parquet(Path(work) / "quarantine" / f"dt={D3.isoformat()}")
    assert sorted(quarantine["reason"]) == ["duplicate", "negative_duration"]
    _check_stats(Path(work))


def _check_stats(work: Path) -> None:
    stats = json.loads((work / "stats" / "dt=2022-04-10.json").read_text())
    assert stats["samples"] == 2 and stats["candidates"] == 2 and stats["events"] == 4
    assert stats["quarantined"] == {"total": 2, "duplicate": 1, "negative_duration": 1}
    assert stats["bad_row_fraction"] == 0.5
    assert stats["history_length"]["p100"] == 2 and stats["history_length"]["p0"] == 1
    assert stats["label_rates"] == {"is_click": 0.5, "is_like": 0.0}
    d2 = json.loads((work / "stats" / "dt=2022-04-09.json").read_text())
    assert d2["dropped_candidates"] == 1 and d2["users_without_history"] == 1


def test_bad_rows_of_history_days_are_quarantined_once(spark, make_config, tmp_path):
    write_hand_case(tmp_path)
    root = tmp_path / "raw" / "events"
    write_day(root, D2, [event(1, 14, day_ms(D2) + 500_000), event(2, 20, day_ms(D2) + 100_000),
                         event(-4, 21, day_ms(D2) + 9), event(5, 22, day_ms(D2) + 86_400_000)], name="part-00001")
    config = make_config(max_uih_len=2, max_candidates=2, max_bad_row_fraction=0.5)
    work = Path(config.data.work_dir)
    build_samples(config=config, window_starts=[D3], spark=spark)  # cold start: D1 and D2 read as history
    stats = json.loads((work / "stats" / "dt=2022-04-10.json").read_text())
    # D2's second file: copies of two events (one copy of each is kept), a negative id, a time out of its
    # day; D1 is clean, and D3's own bad rows stay under "quarantined"
    assert stats["history_quarantined"] == {"days": ["2022-04-08", "2022-04-09"], "total": 4, "duplicate": 2,
                                            "negative_id": 1, "time_out_of_range": 1}
    assert stats["quarantined"]["total"] == 2
    assert len(pd.read_parquet(work / "quarantine" / "dt=2022-04-08")) == 0
    assert sorted(pd.read_parquet(work / "quarantine" / "dt=2022-04-09")["reason"]) == [
        "duplicate", "duplicate", "negative_id", "time_out_of_range"]
    # A rerun finds every day validated: nothing is counted twice.
    shutil.rmtree(work / "history")
    build_samples(config=config, window_starts=[D3], spark=spark)
    stats = json.loads((work / "stats" / "dt=2022-04-10.json").read_text())
    assert stats["history_quarantined"] == {"days": [], "total": 0}
    assert len(pd.read_parquet(work / "quarantine" / "dt=2022-04-09")) == 4


def test_window_starts_between_steps_by_window_days():
    assert window_starts_between(D1, None, 1) == [D1]
    assert window_starts_between(D1, D3, 1) == [D1, D2]
    assert window_starts_between(D1, D3, 7) == [D1]
    with pytest.raises(ValueError, match="must be after"):
        window_starts_between(D3, D1, 1)
