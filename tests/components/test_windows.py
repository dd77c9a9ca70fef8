from datetime import UTC, date, datetime

import pytest

from components.data.windows import training_windows, window_of


def test_window_param_overrides_data_interval():
    start = datetime(2022, 4, 20, tzinfo=UTC)
    assert window_of(window_date="2022-04-15", data_interval_start=start) == date(2022, 4, 15)
    assert window_of(window_date=None, data_interval_start=start) == date(2022, 4, 20)


def test_manual_run_without_window_is_a_clear_error():
    with pytest.raises(ValueError, match="set the window_date Param"):
        window_of(window_date="", data_interval_start=None)
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        window_of(window_date="20.4.2022", data_interval_start=None)


def test_training_windows_precede_the_evaluation_window():
    assert training_windows(date(2022, 4, 20), count=3) == [date(2022, 4, 17), date(2022, 4, 18), date(2022, 4, 19)]
    assert training_windows(date(2022, 4, 20), count=2, window_days=2) == [date(2022, 4, 16), date(2022, 4, 18)]


def test_missing_partitions_lists_absent_and_empty_days(tmp_path):
    from components.data.windows import missing_partitions

    (tmp_path / "dt=2022-04-18").mkdir()
    (tmp_path / "dt=2022-04-18" / "part-0.csv").write_text("user_id\n1\n")
    (tmp_path / "dt=2022-04-19").mkdir()  # empty: not there yet
    days = [date(2022, 4, 18), date(2022, 4, 19), date(2022, 4, 20)]
    assert missing_partitions(str(tmp_path), days) == [date(2022, 4, 19), date(2022, 4, 20)]
