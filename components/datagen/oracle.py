"""The best achievable AUC per task on a window: the true event probabilities scored against the labels.

Also holds the exact rank-based AUC (ties get average ranks) and the reader of a date window of generated
events, shared with the baselines.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from components.datagen.schema import ACTION_COLUMNS, TASK_NAMES, TRUTH_KEY
from hstu_model.metrics import auc  # the exact AUC the evaluator uses, so oracle and model compare alike


def _days(start: date, end: date) -> list[date]:
    if end <= start:
        raise ValueError(f"window [{start}, {end}) is empty; expected start < end")
    return [start + timedelta(days=i) for i in range((end - start).days)]


def _read_file(path: Path, columns: list[str]) -> pa.Table:
    if path.suffix == ".csv":
        opts = pacsv.ConvertOptions(include_columns=columns, column_types={c: pa.int64() for c in columns})
        return pacsv.read_csv(path, convert_options=opts)
    return pq.read_table(path, columns=columns)


def read_window(data: Path, start: date, end: date, columns: list[str], part: str = "events") -> dict[str, np.ndarray]:
    """Read `columns` of the `part` ("events" or "truth") partitions dt in [start, end), in file order.

    Returns:
        column name -> numpy array [N]. Raises ValueError naming the folder when no partition exists.
    """
    tables = []
    for day in _days(start, end):
        folder = Path(data) / part / f"dt={day.isoformat()}"
        files = sorted(folder.glob("part-*")) if folder.is_dir() else []
        tables += [_read_file(f, columns) for f in files]
    if not tables:
        raise ValueError(f"no {part} partitions under {Path(data) / part} for dt in [{start}, {end})")
    table = pa.concat_tables(tables)
    return {c: table.column(c).to_numpy() for c in columns}


def oracle_auc(*, data: Path, window_start: date, window_end: date, at_window_start: bool = False
               ) -> dict[str, float]:
    """AUC per task of the true probabilities against the realised labels on the window [start, end).

    Args:
        at_window_start: score ``p_start_*`` (short-term interest frozen where the day started: the reference
            for a model that sees only pre-window history) instead of ``p_*`` (the full oracle).
    Returns:
        task name (click, like, follow, comment, forward, hate, long_view, profile_enter) -> AUC (NaN when the
        window has one class only).
    Raises:
        ValueError: no partition, misaligned files, or (``at_window_start``) data generated before ``p_start_*``.
    """
    prefix = "p_start_" if at_window_start else "p_"
    events = read_window(data, window_start, window_end, [*TRUTH_KEY, *ACTION_COLUMNS])
    try:
        truth = read_window(data, window_start, window_end, [*TRUTH_KEY, *(prefix + c for c in ACTION_COLUMNS)],
                            part="truth")
    except (KeyError, pa.ArrowInvalid) as exc:
        raise ValueError(f"{data}: the truth files lack {prefix}* columns ({exc}); regenerate the data") from None
    same = all(np.array_equal(events[k], truth[k]) for k in TRUTH_KEY)
    if not same:
        raise ValueError(f"{data}: events and truth rows differ in (user_id, video_id, time_ms) on "
                         f"[{window_start}, {window_end}); expected the generator's aligned files")
    return {task: auc(truth[prefix + col], events[col]) for task, col in zip(TASK_NAMES, ACTION_COLUMNS)}
