"""Two static baselines on the generated raw events, fitted on a training window and scored on an evaluation
window, per task (``hstu data oracle --train-days``).

- popularity: each video's smoothed positive rate on the training window, (pos + a p) / (n + a), a = 20.
- logistic: logit = b + w_user + w_video, scikit-learn's L2-regularised logistic regression on one-hot ids.
Neither sees the order of events, so a sequence model should land between them and the oracle. The
evaluator's baselines are ``components.baselines.suite``: the same idea on the samples the model sees, any data.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import OneHotEncoder

from components.datagen.oracle import auc, read_window
from components.datagen.schema import ACTION_COLUMNS, TASK_NAMES

_SMOOTHING = 20.0
_C = 1.0  # inverse L2 strength: a unit Gaussian prior on each id's weight


def _labels(events: dict[str, np.ndarray]) -> np.ndarray:
    """Labels float64 [N, 8] in ACTION_COLUMNS order."""
    return np.stack([events[c] != 0 for c in ACTION_COLUMNS], axis=1).astype(np.float64)


def _index(train_ids: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map ids to rows of the sorted unique `train_ids`; returns (row int64 [N], known bool [N])."""
    pos = np.clip(np.searchsorted(train_ids, ids), 0, max(len(train_ids) - 1, 0))
    known = train_ids[pos] == ids if len(train_ids) else np.zeros(len(ids), dtype=bool)
    return pos, known


def _group_sum(rows: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Per-row sums of values [N, T] -> [n, T]."""
    return np.stack([np.bincount(rows, weights=values[:, t], minlength=n) for t in range(values.shape[1])], 1)


def popularity_scores(train_items: np.ndarray, train_y: np.ndarray, eval_items: np.ndarray) -> np.ndarray:
    """Smoothed per-video rate; train_y [N, T] -> scores [M, T] (the global rate for unseen videos)."""
    items, rows = np.unique(train_items, return_inverse=True)
    prior = train_y.mean(axis=0)
    rate = (_group_sum(rows, train_y, len(items)) + _SMOOTHING * prior) / (
        np.bincount(rows, minlength=len(items))[:, None] + _SMOOTHING)
    pos, known = _index(items, eval_items)
    return np.where(known[:, None], rate[pos], prior)


def logistic_scores(train_users: np.ndarray, train_items: np.ndarray, train_y: np.ndarray,
                    eval_users: np.ndarray, eval_items: np.ndarray) -> np.ndarray:
    """Fit logit = b + w_user + w_video per task on train_y [N, T]; returns eval logits [M, T].

    Unseen users and videos get weight 0; a task with one class in training gets a constant score.
    """
    encoder = OneHotEncoder(handle_unknown="ignore").fit(np.stack([train_users, train_items], 1))
    x_train = encoder.transform(np.stack([train_users, train_items], 1)).tocsr()
    x_eval = encoder.transform(np.stack([eval_users, eval_items], 1)).tocsr()
    out = np.zeros((len(eval_users), train_y.shape[1]))
    for t in range(train_y.shape[1]):
        if len(np.unique(train_y[:, t])) < 2:
            continue
        # liblinear's dual solver: the fast one on one-hot ids; seeded, so deterministic.
        model = LogisticRegression(C=_C, solver="liblinear", dual=True, max_iter=1000, random_state=0)
        out[:, t] = model.fit(x_train, train_y[:, t]).decision_function(x_eval)
    return out


def baseline_auc(*, data: Path, train_start: date, train_end: date, eval_start: date,
                 eval_end: date) -> dict[str, dict[str, float]]:
    """Fit both baselines on [train_start, train_end) and score them on [eval_start, eval_end).

    Returns:
        {"popularity": {task: AUC}, "logistic": {task: AUC}} with the tasks of `oracle_auc`.
    """
    if eval_start < train_end:
        raise ValueError(f"evaluation window starts {eval_start}, before the training window ends {train_end}; "
                         "expected training strictly before evaluation (docs/design.md §4.4)")
    cols = ["user_id", "video_id", *ACTION_COLUMNS]
    train = read_window(data, train_start, train_end, cols)
    test = read_window(data, eval_start, eval_end, cols)
    y_train, y_test = _labels(train), _labels(test)
    scores = {
        "popularity": popularity_scores(train["video_id"], y_train, test["video_id"]),
        "logistic": logistic_scores(train["user_id"], train["video_id"], y_train, test["user_id"], test["video_id"]),
    }
    return {name: {task: auc(s[:, t], y_test[:, t]) for t, task in enumerate(TASK_NAMES)}
            for name, s in scores.items()}
