"""Positional encoder: ``x + pos_table[pos_id] + time_table[time_id]`` over jagged tokens (docs/design.md §5).

Per sample with K contextual tokens, U history events and T candidates, and P position buckets:
- position ids: contextual token k -> k; every candidate -> K (one shared position); history event i
  (0 = oldest) -> K + 1 + min(U-1-i, P-K-2), i.e. counted backwards from the newest event.
- time ids (``use_time_encoding``): ``floor(sqrt(gap_seconds))`` clipped to the last bucket, where the gap of a
  history event is ``t_last - t_i`` (``t_last`` = the sample's last history timestamp) and the gap of a
  candidate is ``query_time - t_last`` (0 without history); contextual tokens take bucket 0.
A candidate's ids depend only on its own query time and the history, never on the other candidates. With
query-time history the window's own events (the last W history events) take position K and the time id of
``t_i - t_last``, with ``t_last`` the last event before the window.
"""

from __future__ import annotations

import math

import torch
from torch import nn

import kernels
from hstu_model.config import PositionalEncoderConfig
from kernels.jagged import segment_index


class PositionalEncoder(nn.Module):
    """Learned position and time-gap embeddings added to the jagged tokens ``x [L, D]``."""

    def __init__(self, config: PositionalEncoderConfig, width: int, contextual_len: int):
        super().__init__()
        if config.num_position_buckets < contextual_len + 2:
            raise ValueError(f"positional_encoder.num_position_buckets={config.num_position_buckets} must be at "
                             f"least contextual tokens + 2 = {contextual_len + 2}")
        self.num_positions = config.num_position_buckets
        self.num_times = config.num_time_buckets if config.use_time_encoding else 0
        self.contextual_len = contextual_len
        scale = 1.0 / math.sqrt(width)
        self.position_table = nn.Parameter(torch.randn(self.num_positions, width) * scale)  # [P, D]
        self.time_table = (nn.Parameter(torch.randn(self.num_times, width) * scale)  # [T, D]
                           if self.num_times else None)

    def _time_bucket(self, gap: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(gap.clamp(min=0).to(torch.float64)).floor().to(torch.int64).clamp(max=self.num_times - 1)

    def segment_ids(self, uih_lengths: torch.Tensor, uih_timestamp: torch.Tensor, candidate_lengths: torch.Tensor,
                    candidate_timestamp: torch.Tensor, window_lengths: torch.Tensor | None = None
                    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(position ids, time ids) int64 per segment: contextual [B*K], history [U], candidates [C].

        ``window_lengths [B]`` (query-time history): the last W history events of each sample are the window's
        own events. They take the candidates' position id K and the time id of ``t_i - t_last``, and
        ``t_last`` is the last event before the window, so no id depends on events after a candidate.
        """
        k, batch = self.contextual_len, uih_lengths.numel()
        sample_u, index_u = segment_index(uih_lengths, uih_timestamp.numel())
        sample_c, _ = segment_index(candidate_lengths, candidate_timestamp.numel())
        pre = uih_lengths if window_lengths is None else uih_lengths - window_lengths  # [B] events before it
        ctx_pos = torch.arange(k, device=uih_lengths.device).repeat(batch)  # [B*K]
        back = pre[sample_u] - 1 - index_u  # [U] < 0 for the window's events
        hist_pos = torch.where(back >= 0, k + 1 + torch.clamp(back, max=self.num_positions - k - 2), k)
        cand_pos = torch.full_like(candidate_timestamp, k)
        if uih_timestamp.numel():
            last_index = (torch.cumsum(uih_lengths, 0) - uih_lengths + pre - 1).clamp(min=0)  # [B]
            last = torch.where(pre > 0, uih_timestamp[last_index], 0)  # [B]
        else:
            last = torch.zeros_like(uih_lengths)
        has_history = (pre > 0)[sample_c]
        cand_gap = torch.where(has_history, candidate_timestamp - last[sample_c], 0)
        ctx_time = torch.zeros_like(ctx_pos)
        hist_time = torch.where(back >= 0, last[sample_u] - uih_timestamp,
                                torch.where((pre > 0)[sample_u], uih_timestamp - last[sample_u], 0))
        if self.num_times:
            hist_time, cand_gap = self._time_bucket(hist_time), self._time_bucket(cand_gap)
        return [(ctx_pos, ctx_time), (hist_pos, hist_time), (cand_pos, cand_gap)]

    def forward(self, x: torch.Tensor, pos_ids: torch.Tensor, time_ids: torch.Tensor) -> torch.Tensor:
        """``x [L, D]``, pos_ids/time_ids int64 [L] -> ``[L, D]``."""
        return kernels.add_position_time(x, pos_ids, time_ids if self.num_times else None, self.position_table,
                                         self.time_table)
