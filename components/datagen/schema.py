"""Column contracts of the generated data and loaders for the real KuaiRand-Pure side tables.

The event columns are the KuaiRand `log_standard` columns in their published order (docs/design.md §4.1); the action
columns are listed in the bit order of docs/design.md §4.2 (click 1, like 2, ..., profile_enter 128).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from components.config import ACTIONS

EVENT_COLUMNS: tuple[str, ...] = (
    "user_id", "video_id", "date", "hourmin", "time_ms", "is_click", "is_like", "is_follow", "is_comment",
    "is_forward", "is_hate", "long_view", "play_time_ms", "duration_ms", "profile_stay_time",
    "comment_stay_time", "is_profile_enter", "is_rand", "tab",
)
# docs/design.md §4.2 bit order: bit k of the action weight is ACTION_COLUMNS[k].
ACTION_COLUMNS: tuple[str, ...] = ACTIONS
TASK_NAMES: tuple[str, ...] = (
    "click", "like", "follow", "comment", "forward", "hate", "long_view", "profile_enter",
)
TRUTH_KEY: tuple[str, ...] = ("user_id", "video_id", "time_ms")
PROB_COLUMNS: tuple[str, ...] = tuple(f"p_{c}" for c in ACTION_COLUMNS)
# The same probabilities had the user's short-term interest stayed where the day started (see simulate.py): what
# a model that sees only history before a one-day window could know at best about that interest.
START_PROB_COLUMNS: tuple[str, ...] = tuple(f"p_start_{c}" for c in ACTION_COLUMNS)
TRUTH_COLUMNS: tuple[str, ...] = TRUTH_KEY + PROB_COLUMNS + START_PROB_COLUMNS

USER_FEATURE_COLUMNS: tuple[str, ...] = (
    "user_id", "user_active_degree", "is_lowactive_period", "is_live_streamer", "is_video_author",
    "follow_user_num", "follow_user_num_range", "fans_user_num", "fans_user_num_range", "friend_user_num",
    "friend_user_num_range", "register_days", "register_days_range",
) + tuple(f"onehot_feat{i}" for i in range(18))
_USER_STRING_COLUMNS = frozenset(
    {"user_active_degree", "follow_user_num_range", "fans_user_num_range", "friend_user_num_range",
     "register_days_range"}
)
# Columns with empty cells in the real file: float64 with NaN; every other numeric column is int64.
_USER_NULLABLE_COLUMNS = frozenset({"onehot_feat4"} | {f"onehot_feat{i}" for i in range(12, 18)})

DATA_DIR: Path = Path(__file__).resolve().parent.parent / "builtin_data" / "kuairand_pure"
USER_FEATURES_FILE: Path = DATA_DIR / "user_features_pure.csv"
VIDEO_FEATURES_FILE: Path = DATA_DIR / "video_features_basic_pure.csv"
LICENSE_FILE: Path = DATA_DIR / "LICENSE.CC-BY-SA-4.0"


def _check_columns(path: Path, found: list[str], expected: tuple[str, ...]) -> None:
    missing = [c for c in expected if c not in found]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; expected the KuaiRand-Pure columns {list(expected)}")


def load_user_features_text(path: Path | None = None) -> pd.DataFrame:
    """Read the user-features file with every cell as its original text (for byte-faithful copies).

    Returns:
        DataFrame [U, 31] of str, columns in the real file's order; empty cells stay "".
    """
    path = Path(path or USER_FEATURES_FILE)
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    _check_columns(path, list(table.columns), USER_FEATURE_COLUMNS)
    return table[list(USER_FEATURE_COLUMNS)]


def load_user_features(path: Path | None = None) -> pd.DataFrame:
    """Read the KuaiRand-Pure user features with their quirks kept and typed.

    Quirks: `user_active_degree` may be "UNKNOWN"; `is_live_streamer` holds -124 for "no"; the `*_range`
    columns are strings such as "[100,1k)" or "730+"; some `onehot_feat*` columns have empty cells.

    Returns:
        DataFrame [U, 31]: range and degree columns str, nullable onehot columns float64 (NaN for empty),
        every other column int64.
    """
    path = Path(path or USER_FEATURES_FILE)
    text = load_user_features_text(path)
    out = {}
    for col in USER_FEATURE_COLUMNS:
        if col in _USER_STRING_COLUMNS:
            out[col] = text[col].astype(str)
        elif col in _USER_NULLABLE_COLUMNS:
            out[col] = pd.to_numeric(text[col].replace("", np.nan), errors="raise").astype("float64")
        else:
            values = pd.to_numeric(text[col], errors="coerce")
            if values.isna().any():
                row = int(np.flatnonzero(values.isna().to_numpy())[0])
                raise ValueError(f"{path}: column {col!r} row {row} holds {text[col].iloc[row]!r}; expected an integer")
            out[col] = values.astype("int64")
    return pd.DataFrame(out)


def load_videos(path: Path | None = None) -> pd.DataFrame:
    """Read the real video table: the videos with a known duration and their first tag.

    Returns:
        DataFrame [I, 3]: video_id int64, duration_ms int64 (> 0), first_tag int64 (-1 when the tag is empty).
    """
    path = Path(path or VIDEO_FEATURES_FILE)
    table = pd.read_csv(path, dtype={"tag": str})
    _check_columns(path, list(table.columns), ("video_id", "video_duration", "tag"))
    table = table[table["video_duration"].notna() & (table["video_duration"] > 0)]
    first_tag = table["tag"].fillna("-1").str.split(",").str[0].astype("int64")
    return pd.DataFrame({
        "video_id": table["video_id"].astype("int64").to_numpy(),
        "duration_ms": table["video_duration"].round().astype("int64").to_numpy(),
        "first_tag": first_tag.to_numpy(),
    })
