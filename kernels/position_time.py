"""Adds positional and time embeddings to jagged token values: x + pos_table[pos_ids] + time_table[time_ids].

PyTorch only, with no `backend` argument: an embedding lookup (its backward sums rows with index_add); a fused
Triton version would save one read and one write of [L, D] in a step dominated by attention.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def add_position_time(
    x: torch.Tensor,
    pos_ids: torch.Tensor,
    time_ids: torch.Tensor | None,
    pos_table: torch.Tensor,
    time_table: torch.Tensor | None,
) -> torch.Tensor:
    """x + pos_table[pos_ids] (+ time_table[time_ids] when time_table is given).

    Args:
        x: [L, D]; pos_ids, time_ids: int64 [L]; pos_table: [P, D]; time_table: [T, D] or None.

    Returns:
        [L, D].
    """
    if pos_ids.shape != x.shape[:1]:
        raise ValueError(f"add_position_time: pos_ids shape {tuple(pos_ids.shape)}, expected [{x.shape[0]}]")
    out = x + F.embedding(pos_ids, pos_table)
    if time_table is not None:
        if time_ids is None or time_ids.shape != x.shape[:1]:
            raise ValueError(f"add_position_time: time_ids must be int64 [{x.shape[0]}] with a time_table")
        out = out + F.embedding(time_ids, time_table)
    return out
