"""Helpers that write tiny raw event logs in the KuaiRand layout (dt=YYYY-MM-DD partitions)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd

from components.config import ACTIONS

EVENT_COLUMNS = ("user_id", "video_id", "date", "hourmin", "time_ms", *ACTIONS[:7], "play_time_ms",
                 "duration_ms", "profile_stay_time", "comment_stay_time", "is_profile_enter", "is_rand", "tab")
CONTEXTUAL = ("user_active_degree", "follow_user_num_range", "fans_user_num_range", "friend_user_num_range",
              "register_days_range")


def day_ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


def event(user: int, video: int, time_ms: int, weight: int = 0, play_ms: float = 1000, duration_ms: float = 5000,
          **extra) -> dict:
    """One event in the KuaiRand columns; ``weight`` is the docs/design.md §4.2 bitmask spread over the flags."""
    row = {c: 0 for c in EVENT_COLUMNS}
    row.update(user_id=user, video_id=video, time_ms=time_ms, play_time_ms=play_ms, duration_ms=duration_ms)
    for bit, action in enumerate(ACTIONS):
        row[action] = (weight >> bit) & 1
    row.update(extra)
    return row


def write_day(root: Path, day: date, rows: list[dict], fmt: str = "csv", columns=EVENT_COLUMNS,
              name: str = "part-00000") -> Path:
    """Writes rows to ``root/dt=day/name.{csv,parquet}`` with exactly ``columns`` (in that order)."""
    folder = Path(root) / f"dt={day.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(rows, columns=list(columns))
    path = folder / f"{name}.{fmt}"
    if fmt == "csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return path


def write_user_features(path: Path, rows: list[dict]) -> Path:
    """A user features CSV in the KuaiRand-Pure format (the contextual subset of its columns)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=["user_id", *CONTEXTUAL]).to_csv(path, index=False)
    return path


def read_samples(work_dir: str | Path, day: date) -> pd.DataFrame:
    """The samples partition of ``day`` as pandas, sorted by user_id, list columns as Python lists."""
    frame = pd.read_parquet(Path(work_dir) / "samples" / f"dt={day.isoformat()}")
    for c in frame.columns:
        if frame[c].dtype == object:
            frame[c] = frame[c].map(list)
    return frame.sort_values("user_id").reset_index(drop=True)
