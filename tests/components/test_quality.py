"""Data quality: each bad row gets its reason; above the limit the job fails, names the counts and writes nothing."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from components.data.quality import check_bad_fraction, flag_bad_rows, reason_counts
from components.data.samples import build_samples
from components.data.sources import read_events
from tests.components.event_logs import EVENT_COLUMNS, day_ms, event, write_day, write_user_features

pytestmark = pytest.mark.spark

DAY = date(2022, 4, 9)


def test_each_rule_gives_its_reason(spark, tmp_path):
    t = day_ms(DAY)
    rows = [event(1, 1, t + 1), event(None, 1, t + 2), event(1, -1, t + 3), event(1, 2, None),
            event(1, 3, t - 1), event(1, 4, t + 86_400_000), event(1, 5, t + 4, play_ms=None),
            event(1, 6, t + 5, duration_ms=-1), event(1, 1, t + 1, play_ms=2000), event(1, 1, t + 1, play_ms=3000)]
    write_day(tmp_path, DAY, rows, fmt="parquet")
    text = [event(1, "x1", t + 6), event(1, 7, "noon")]
    write_day(tmp_path / "csv", DAY, text, columns=EVENT_COLUMNS, name="part-text")
    flagged = flag_bad_rows(read_events(spark, root=str(tmp_path), fmt="parquet", days=[DAY])).collect()
    got = {(r["video_id"], r["time_ms"], r["reason"]) for r in flagged}
    assert got == {(1, t + 1, None), (1, t + 2, "null_id"), (-1, t + 3, "negative_id"), (2, None, "null_time"),
                   (3, t - 1, "time_out_of_range"), (4, t + 86_400_000, "time_out_of_range"),
                   (5, t + 4, "null_duration"), (6, t + 5, "negative_duration"),
                   (1, t + 1, "duplicate")}
    kept = [r for r in flagged if r["video_id"] == 1 and r["reason"] is None]
    assert [r["play_time_ms"] for r in kept] == [1000.0], "the smallest copy is kept"
    text_rows = flag_bad_rows(read_events(spark, root=str(tmp_path / "csv"), fmt="csv", days=[DAY])).collect()
    assert sorted(r["reason"] for r in text_rows) == ["unparsable_time_ms", "unparsable_video_id"]


def test_reason_counts_and_limit_message(spark, tmp_path):
    t = day_ms(DAY)
    write_day(tmp_path, DAY, [event(1, 1, t), event(1, 1, t), event(2, 2, t, play_ms=-1), event(3, 3, t)])
    total, by_reason = reason_counts(flag_bad_rows(read_events(spark, root=str(tmp_path), fmt="csv", days=[DAY])))
    assert (total, by_reason) == (4, {"duplicate": 1, "negative_duration": 1})
    check_bad_fraction(total, by_reason, 0.5, DAY, date(2022, 4, 10))  # 50% is not above 50%
    with pytest.raises(ValueError, match=r"2 of 4 rows \(50.00%\).*2022-04-09.*1 duplicate, 1 negative_duration"):
        check_bad_fraction(total, by_reason, 0.25, DAY, date(2022, 4, 10))


def test_job_over_the_limit_fails_and_writes_nothing(spark, make_config, tmp_path):
    t = day_ms(DAY)
    write_day(tmp_path / "raw" / "events", DAY, [event(1, 1, t), event(2, 2, t, duration_ms=-4)])
    write_user_features(tmp_path / "raw" / "user_features.csv", [])
    config = make_config(max_bad_row_fraction=0.05)
    with pytest.raises(ValueError, match=r"1 of 2 rows \(50.00%\) are bad in window \[2022-04-09, 2022-04-10\)"):
        build_samples(config=config, window_starts=[DAY], spark=spark)
    work = Path(config.data.work_dir)
    for folder in ("samples", "quarantine", "history", "stats"):
        assert not (work / folder).exists(), f"{folder} written although the job failed"
