"""AUC per task and grouped AUC per user: exact, rank-based, ties counted half (docs/design.md §5).

    AUC = (sum of the positives' ranks - P (P + 1) / 2) / (P N)    ranks 1-based, tied scores get their mean rank
    GAUC = sum_g n_g AUC_g / sum_g n_g over groups g holding both classes (n_g = the group's candidates)

Both return NaN when no (group) has both a positive and a negative.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _array(x: Any, dtype: type) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy() if dtype is np.float64 else x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype).reshape(-1)


def _ranked_auc(groups: np.ndarray, scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per group (sorted unique ids): (AUC, candidates); AUC is NaN where one class is missing."""
    order = np.lexsort((scores, groups))
    g, s, y = groups[order], scores[order], labels[order]
    n = g.size
    group_start_flag = np.r_[True, g[1:] != g[:-1]]
    group_id = np.cumsum(group_start_flag) - 1  # [n]
    group_starts = np.flatnonzero(group_start_flag)
    position = np.arange(n) - group_starts[group_id] + 1.0  # 1-based rank within the group
    run_flag = group_start_flag | np.r_[True, s[1:] != s[:-1]]
    run_id = np.cumsum(run_flag) - 1
    run_first = np.flatnonzero(run_flag)
    run_last = np.r_[run_first[1:], n] - 1
    rank = (position[run_first] + position[run_last]) / 2.0  # mean rank of each tie run
    ranks = rank[run_id]
    groups_n = np.bincount(group_id)
    pos = np.bincount(group_id, weights=y)
    neg = groups_n - pos
    rank_sum = np.bincount(group_id, weights=ranks * y)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (rank_sum - pos * (pos + 1) / 2.0) / (pos * neg)
    auc[(pos == 0) | (neg == 0)] = np.nan
    return auc, groups_n


def _checked(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    s, y = _array(scores, np.float64), _array(labels, np.float64)
    if s.shape != y.shape:
        raise ValueError(f"scores have {s.size} entries but labels {y.size}")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("labels must be 0/1")
    if np.isnan(s).any():
        raise ValueError(f"scores contain {int(np.isnan(s).sum())} NaN value(s)")
    return s, y


def auc(scores: Any, labels: Any) -> float:
    """ROC AUC of ``scores [N]`` (logits or probabilities) against 0/1 ``labels [N]``; NaN if one class only."""
    s, y = _checked(scores, labels)
    if s.size == 0:
        return float("nan")
    value, _ = _ranked_auc(np.zeros(s.size, np.int64), s, y)
    return float(value[0])


def grouped_auc(scores: Any, labels: Any, groups: Any) -> float:
    """AUC per group (e.g. user), averaged weighted by the group's candidates, over groups with both classes."""
    s, y = _checked(scores, labels)
    g = _array(groups, np.int64)
    if g.shape != s.shape:
        raise ValueError(f"groups have {g.size} entries but scores {s.size}")
    if s.size == 0:
        return float("nan")
    value, counts = _ranked_auc(g, s, y)
    valid = ~np.isnan(value)
    if not valid.any():
        return float("nan")
    return float((value[valid] * counts[valid]).sum() / counts[valid].sum())
