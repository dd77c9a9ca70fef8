"""Time windows of a run (DESIGN §4.4): the evaluation window is the run's own; training uses the ones before."""

from __future__ import annotations

from datetime import date, datetime, timedelta


def window_of(*, window_date: str | None, data_interval_start: datetime | date | None) -> date:
    """The run's evaluation window start: the ``window_date`` Param if given, else the data interval's start.

    Raises:
        ValueError: when neither is available (a manual run without a window date) or the date is malformed.
    """
    if window_date:
        try:
            return date.fromisoformat(str(window_date))
        except ValueError:
            raise ValueError(f"window_date must be YYYY-MM-DD, got {window_date!r}") from None
    if data_interval_start is None:
        raise ValueError("this run has no data interval (manual trigger): set the window_date Param")
    return data_interval_start.date() if isinstance(data_interval_start, datetime) else data_interval_start


def training_windows(eval_window: date, *, count: int, window_days: int = 1) -> list[date]:
    """The ``count`` window starts before ``eval_window``, oldest first (never the evaluation window itself)."""
    if count <= 0:
        raise ValueError(f"the number of training windows must be > 0, got {count}")
    return [eval_window - timedelta(days=window_days * i) for i in range(count, 0, -1)]


def missing_partitions(root: str, windows: list[date]) -> list[date]:
    """The windows whose ``dt=YYYY-MM-DD`` partition under ``root`` (any fsspec URI) is absent or empty."""
    import fsspec

    fs, base = fsspec.core.url_to_fs(root)
    missing = []
    for day in windows:
        path = f"{base.rstrip('/')}/dt={day.isoformat()}"
        if not fs.exists(path) or not fs.ls(path):
            missing.append(day)
    return missing
