"""A summary of each sample's action history, read by the tower beside the encoder (an extension of the spec).

Per sample with history actions ``a_1..a_U`` (bitmasks) and per action bit ``k`` of ``action_weights``:

    rate_k      = #{i : a_i & w_k} / (U + 1)                 (the whole history)
    recent_k    = #{i > U - R : a_i & w_k} / (min(U, R) + 1)  (its last R events)
    length      = log1p(U) / log1p(max_seq_len)
and per candidate ``in_history`` = 1 when its item id occurs in its own sample's history.

Why: a user's own past rate of an action is the strongest single predictor of a rare action on real logs
(comment: 0.74 AUC alone), and the encoder, trained on a few thousand samples, memorises ids long before its
attention learns to average action bits (measured: benchmarks/results/quality_diagnose.json). The summary
hands the tower those counts directly; it reads only the history, so labels never leak into it.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from hstu_model.positional import segment_index

RECENT_EVENTS = 20


def _counts(actions: torch.Tensor, weights: torch.Tensor, sample: torch.Tensor, batch: int,
            keep: torch.Tensor | None = None) -> torch.Tensor:
    """Per sample, how many history events carry each action bit: ``[B, A]`` float32."""
    bits = ((actions[:, None] & weights[None, :]) != 0).float()  # [U, A]
    if keep is not None:
        bits = bits * keep[:, None]
    return torch.zeros(batch, weights.numel(), device=actions.device).index_add_(0, sample, bits)


def history_summary(uih_action: torch.Tensor, uih_lengths: torch.Tensor, uih_item: torch.Tensor,
                    candidate_item: torch.Tensor, candidate_lengths: torch.Tensor, action_weights: torch.Tensor,
                    max_seq_len: int, num_items: int, window_lengths: torch.Tensor | None = None) -> torch.Tensor:
    """The summary features of every candidate.

    Args:
        uih_action: int64 [U] action bitmasks; uih_lengths: int64 [B]; uih_item: int64 [U] history item ids.
        candidate_item: int64 [C] candidate item ids; candidate_lengths: int64 [B].
        action_weights: int64 [A] the action bits; num_items: ids are below it (the table's rows).
        window_lengths: int64 [B] (query-time history) the last W history events of each sample are the
            window's own events, whose actions are the candidates' labels: the summary leaves them out.
    Returns:
        float32 [C, 2A + 2]: rates, recent rates, length, in_history.
    """
    batch = uih_lengths.numel()
    sample, index = segment_index(uih_lengths, uih_action.numel())  # sample of each event, position in it
    pre = uih_lengths if window_lengths is None else uih_lengths - window_lengths  # [B] events before the window
    before = index < pre[sample]  # [U]
    recent = ((index >= (pre[sample] - RECENT_EVENTS)) & before).float()  # [U]
    lengths = pre.float()[:, None]  # [B, 1]
    rates = _counts(uih_action, action_weights, sample, batch, before.float()) / (lengths + 1)  # [B, A]
    recent_rates = _counts(uih_action, action_weights, sample, batch, recent) / (lengths.clamp(max=RECENT_EVENTS) + 1)
    length = torch.log1p(lengths) / math.log1p(max_seq_len)  # [B, 1]
    per_sample = torch.cat([rates, recent_rates, length], dim=1)  # [B, 2A + 1]
    candidate_sample, _ = segment_index(candidate_lengths, candidate_item.numel())
    # (sample, item) keys: a candidate is "in history" only for its own sample's history (no host sync).
    keys = torch.where(before, sample * num_items + uih_item, -1)
    in_history = torch.isin(candidate_sample * num_items + candidate_item, keys).float()
    return torch.cat([per_sample[candidate_sample], in_history[:, None]], dim=1)


class HistorySummaryEncoder(nn.Module):
    """``[C, 2A + 2]`` summary -> ``[C, D]`` (Linear, SiLU, Linear): the tower's second input."""

    def __init__(self, num_actions: int, width: int):
        super().__init__()
        self.input_dim = 2 * num_actions + 2
        self.net = nn.Sequential(nn.Linear(self.input_dim, width), nn.SiLU(), nn.Linear(width, width))

    def forward(self, summary: torch.Tensor) -> torch.Tensor:
        return self.net(summary)
