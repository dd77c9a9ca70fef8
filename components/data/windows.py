"""Time windows of a run (docs/design.md §4.4): the evaluation window is the run's own; training uses the ones before."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from pathlib import Path

logger = logging.getLogger(__name__)


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


def select_training_windows(samples_root: str | Path, eval_window: date, *, count: int, window_days: int = 1,
                            given: list[date] | None = None) -> list[date]:
    """The training windows of ``eval_window``: ``given`` (sorted), else the ``count`` before it that have samples.

    Args:
        samples_root: ``{work_dir}/samples``, holding ``dt=YYYY-MM-DD`` partitions (local path).
    Raises:
        ValueError: a given window is not before ``eval_window`` (docs/design.md §4.4).
        FileNotFoundError: none of the ``count`` default windows has a sample partition.
    """
    if given:
        bad = [w for w in given if w >= eval_window]
        if bad:
            raise ValueError(f"training window(s) {bad} are not before the evaluation window {eval_window} "
                             "(docs/design.md §4.4)")
        return sorted(given)
    wanted = training_windows(eval_window, count=count, window_days=window_days)
    root = Path(samples_root)
    found = [w for w in wanted if (root / f"dt={w.isoformat()}").is_dir()]
    if not found:
        raise FileNotFoundError(f"no sample partition for the training windows {[str(w) for w in wanted]} under "
                                f"{root}; build them with `hstu samples` first")
    if len(found) < len(wanted):
        logger.warning("training on %d of %d windows: %s missing", len(found), len(wanted),
                       [str(w) for w in wanted if w not in found])
    return found


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


def window_dir(work_dir: str | Path, window: date) -> Path:
    """``{work_dir}/samples/dt=YYYY-MM-DD``: the sample partition of one window."""
    return Path(work_dir) / "samples" / f"dt={window.isoformat()}"


def sample_files(work_dir: str | Path, windows: Sequence[date]) -> list[Path]:
    """The Parquet files of the windows' sample partitions, sorted.

    Raises:
        FileNotFoundError: a window has no partition folder or no Parquet file in it.
    """
    files: list[Path] = []
    for window in windows:
        folder = window_dir(work_dir, window)
        found = sorted(p for p in folder.glob("*.parquet") if not p.name.startswith((".", "_")))
        if not found:
            raise FileNotFoundError(f"no sample Parquet for window {window} under {folder}; "
                                    f"run `hstu samples --window {window}` first")
        files += found
    return files


def _date_argument(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {text!r}") from None


def add_window_arguments(parser: argparse.ArgumentParser) -> None:
    """The sample job's arguments, shared by ``hstu samples build`` and ``spark-submit components/data/samples.py``."""
    parser.add_argument("--config", type=Path, required=True, help="pipeline config file (protobuf text format)")
    parser.add_argument("--window-start", type=_date_argument, required=True, help="first window start, YYYY-MM-DD")
    parser.add_argument("--window-end", type=_date_argument, help="exclusive; backfill every window start before it")
    parser.add_argument("--work-dir", help="override data_config.work_dir (where samples and state live)")
