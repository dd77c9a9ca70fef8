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

from components.datagen.schema import ACTION_COLUMNS, PROB_COLUMNS, TASK_NAMES, TRUTH_COLUMNS, TRUTH_KEY
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


def oracle_aucs(*, data: Path, window_start: date, window_end: date) -> dict[str, dict[str, float]]:
    """AUC per task of the true probabilities against the realised labels on the window [start, end).

    Returns:
        {"oracle": {task: AUC} of ``p_*``, "oracle_window_start": {task: AUC} of ``p_start_*`` (short-term
        interest frozen where the day started: the reference for a model that sees only pre-window history)};
        the second is absent for data generated before ``p_start_*`` existed. Tasks: click, like, follow,
        comment, forward, hate, long_view, profile_enter; NaN when the window has one class only.
    Raises:
        ValueError: no partition, or events and truth files that are not aligned.
    """
    events = read_window(data, window_start, window_end, [*TRUTH_KEY, *ACTION_COLUMNS])
    try:
        truth = read_window(data, window_start, window_end, list(TRUTH_COLUMNS), part="truth")
    except (KeyError, pa.ArrowInvalid):  # generated before p_start_*
        truth = read_window(data, window_start, window_end, [*TRUTH_KEY, *PROB_COLUMNS], part="truth")
    if not all(np.array_equal(events[k], truth[k]) for k in TRUTH_KEY):
        raise ValueError(f"{data}: events and truth rows differ in (user_id, video_id, time_ms) on "
                         f"[{window_start}, {window_end}); expected the generator's aligned files")
    out = {}
    for name, prefix in (("oracle", "p_"), ("oracle_window_start", "p_start_")):
        if prefix + ACTION_COLUMNS[0] in truth:
            out[name] = {task: auc(truth[prefix + col], events[col]) for task, col in zip(TASK_NAMES, ACTION_COLUMNS)}
    return out


def oracle_auc(*, data: Path, window_start: date, window_end: date, at_window_start: bool = False
               ) -> dict[str, float]:
    """One entry of :func:`oracle_aucs`: ``p_*`` or, with ``at_window_start``, ``p_start_*``.

    Raises:
        ValueError: as :func:`oracle_aucs`, or ``at_window_start`` on data generated before ``p_start_*``.
    """
    name = "oracle_window_start" if at_window_start else "oracle"
    found = oracle_aucs(data=data, window_start=window_start, window_end=window_end)
    if name not in found:
        raise ValueError(f"{data}: the truth files lack p_start_* columns; regenerate the data")
    return found[name]
