"""History state: incremental updates equal a cold rebuild; per-window calls equal a backfill; reruns replace."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from components.data.history import HISTORY_SCHEMA, empty_state, events_by_user, update_history
from components.data.samples import build_samples
from tests.components.event_logs import read_samples
from tests.components.test_samples import D2, D3, EXPECTED_D2, EXPECTED_D3, write_hand_case

pytestmark = pytest.mark.spark

EVENT_COLUMNS = "user_id bigint, video_id bigint, time_ms bigint, action_weight bigint, play_time_ms double"


def _events(spark, rows):
    return spark.createDataFrame(rows, EVENT_COLUMNS)


def _collect(state) -> dict[int, list[tuple]]:
    return {r["user_id"]: [tuple(e) for e in r["events"]] for r in state.collect()}


def test_update_twice_equals_rebuild_from_all_events(spark):
    day1 = [(1, 5, 100, 1, 1.0), (1, 4, 100, 2, 2.0), (1, 3, 50, 0, 0.5), (2, 9, 70, 1, 3.0)]
    day2 = [(1, 7, 300, 4, 1.0), (1, 6, 200, 0, 1.0), (3, 1, 250, 8, 9.0)]
    step = update_history(update_history(empty_state(spark), _events(spark, day1), 3), _events(spark, day2), 3)
    cold = update_history(empty_state(spark), _events(spark, day1 + day2), 3)
    assert _collect(step) == _collect(cold)
    # last 3 by (time, video); each with its time in seconds (floored) and its watch time in seconds
    assert _collect(step)[1] == [(100, 5, 1, 0, 0.001), (200, 6, 0, 0, 0.001), (300, 7, 4, 0, 0.001)]
    assert step.schema["events"].dataType == HISTORY_SCHEMA["events"].dataType
    assert _collect(events_by_user(_events(spark, day1)))[1][:2] == [(50, 3, 0, 0, 0.0005), (100, 4, 2, 0, 0.002)]
    seconds = _events(spark, [(1, 5, 1_649_376_000_999, 1, 2500.0)])
    assert _collect(events_by_user(seconds))[1] == [(1_649_376_000_999, 5, 1, 1_649_376_000, 2.5)]


def test_cold_start_incremental_and_rerun_give_identical_samples(spark, make_config, tmp_path):
    write_hand_case(tmp_path)
    config = make_config(max_uih_len=2, max_candidates=2, max_bad_row_fraction=0.5)
    work = Path(config.data.work_dir)
    cold = build_samples(config=config, window_starts=[D3], spark=spark)[0]  # no state yet
    assert cold.history_source == "cold start"
    cold_rows = read_samples(work, D3)
    pd.testing.assert_frame_equal(cold_rows, pd.DataFrame(EXPECTED_D3), check_dtype=False)
    build_samples(config=config, window_starts=[D2], spark=spark)  # one call per window
    pd.testing.assert_frame_equal(read_samples(work, D2), pd.DataFrame(EXPECTED_D2), check_dtype=False)
    rerun = build_samples(config=config, window_starts=[D3], spark=spark)[0]  # now from D2's saved state
    assert rerun.history_source == "state dt=2022-04-10"
    pd.testing.assert_frame_equal(read_samples(work, D3), cold_rows)
    partitions = sorted(p.name for p in (work / "samples").iterdir())
    assert partitions == ["dt=2022-04-09", "dt=2022-04-10"], "a rerun replaces its partition, no leftovers"
    assert len(list((work / "samples" / "dt=2022-04-10").glob("*.parquet"))) >= 1
