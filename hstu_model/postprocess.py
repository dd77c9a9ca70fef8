"""Output postprocessors on the candidates' encoder outputs ``h [C, D]`` (docs/design.md §5).

- timestamp_layernorm: ``LayerNorm(Linear([h, cos(2 pi f_p), sin(2 pi f_p) for each period p]))`` where
  ``f_p = (t mod (unit_p * n_p)) / (unit_p * n_p)`` is the phase of the candidate's query time ``t`` (epoch
  seconds) in period p; the spec's ``[3600, 86400] x [24, 7]`` gives hour of day and day of week.
- layernorm: ``LayerNorm(h)``.  l2norm: ``h / ||h||``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from hstu_model.config import PostprocessorConfig


class TimestampLayerNormPostprocessor(nn.Module):
    """Adds cos/sin of the query time's phase in each period, then Linear and LayerNorm: ``[C, D] -> [C, D]``."""

    def __init__(self, config: PostprocessorConfig, width: int):
        super().__init__()
        cycles = [u * n for u, n in zip(config.time_duration_period_units, config.time_duration_units_per_period)]
        self.register_buffer("cycles", torch.tensor(cycles, dtype=torch.int64), persistent=False)  # [P] seconds
        self.linear = nn.Linear(width + 2 * len(cycles), width)
        self.norm = nn.LayerNorm(width)

    def forward(self, h: torch.Tensor, query_time: torch.Tensor) -> torch.Tensor:
        """``h [C, D]``, ``query_time int64 [C]`` epoch seconds -> ``[C, D]``."""
        # The modulo runs in int64: epoch seconds (~1.7e9) lose whole minutes in float32.
        phase = torch.remainder(query_time[:, None], self.cycles[None, :]).to(h.dtype) / self.cycles.to(h.dtype)
        angle = 2 * math.pi * phase  # [C, P]
        return self.norm(self.linear(torch.cat([h, torch.cos(angle), torch.sin(angle)], dim=1)))


class LayerNormPostprocessor(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)

    def forward(self, h: torch.Tensor, query_time: torch.Tensor) -> torch.Tensor:
        return self.norm(h)


class L2NormPostprocessor(nn.Module):
    def forward(self, h: torch.Tensor, query_time: torch.Tensor) -> torch.Tensor:
        return F.normalize(h, p=2.0, dim=-1, eps=1e-6)


def build_postprocessor(config: PostprocessorConfig, width: int) -> nn.Module:
    """The postprocessor named by ``config.kind``.

    Raises:
        ValueError: an unknown kind.
    """
    if config.kind == "timestamp_layernorm":
        return TimestampLayerNormPostprocessor(config, width)
    if config.kind == "layernorm":
        return LayerNormPostprocessor(width)
    if config.kind == "l2norm":
        return L2NormPostprocessor()
    raise ValueError(f"output_postprocessor {config.kind!r} is not supported; use timestamp_layernorm, "
                     "layernorm or l2norm")
