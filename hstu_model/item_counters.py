"""The candidates' item counters as tower inputs (an extension of the spec; data_config.item_counter_days).

Each candidate arrives with ``counts [C, 1 + K]``: its video's events by every user in the days before its
own time, and those with each of the K action bits (components/data/item_counters.py). The tower reads, per bit,
the rate shrunk towards the training candidates' rate of that bit, and how many events there were:

    rate_k = (counts_k + S * prior_k) / (counts_0 + S)       S = SMOOTHING pseudo-events
    volume = min(log1p(counts_0) / log1p(VOLUME_SCALE), 1)

The prior is counted from the labels of the candidates the model trains on (buffers, saved with the model,
never updated outside training), so an unseen video reads the pooled rate and a video seen a thousand times
reads its own. Why shrink: a video with one earlier click has a raw rate of 1; with the shrinkage a logistic
regression on these rates reaches click AUC 0.80 on the real held-out day, with Laplace smoothing instead far
less (benchmarks/results/QUALITY_NOTES.md §11, §16).
"""

from __future__ import annotations

import math

import torch
from torch import nn

ACTION_BITS = 8  # the action bitmask's width (docs/design.md §4.2): the counters' columns after the events
SMOOTHING = 20.0
VOLUME_SCALE = 1e5


class ItemCounterRates(nn.Module):
    """``counts [C, 1 + K]`` -> ``[C, K + 1]`` float32: the K smoothed rates, then the volume (all in [0, 1])."""

    def __init__(self, num_bits: int):
        super().__init__()
        self.num_bits = num_bits
        # [candidates counted, positives of each bit] over the training labels seen so far
        self.register_buffer("label_counts", torch.zeros(num_bits + 1, dtype=torch.float64))

    @property
    def input_dim(self) -> int:
        return self.num_bits + 1

    def count(self, labels: torch.Tensor) -> None:
        """Adds a training batch's candidate labels (int64 [C] bitmasks) to the prior's counts."""
        bits = (labels[:, None] >> torch.arange(self.num_bits, device=labels.device)) & 1
        self.label_counts[0] += labels.numel()
        self.label_counts[1:] += bits.sum(0).to(self.label_counts.dtype)

    def prior(self) -> torch.Tensor:
        """float32 [K]: each bit's rate over the counted labels (0.5 before any)."""
        return ((self.label_counts[1:] + 1) / (self.label_counts[0] + 2)).float()

    def forward(self, counts: torch.Tensor) -> torch.Tensor:
        if counts.shape[1] != self.num_bits + 1:
            raise ValueError(f"item counts have {counts.shape[1]} columns per candidate; expected "
                             f"{self.num_bits + 1} (events, then one per action bit)")
        counts = counts.float()
        events = counts[:, :1]
        rates = (counts[:, 1:] + SMOOTHING * self.prior()) / (events + SMOOTHING)
        volume = torch.clamp(torch.log1p(events) / math.log1p(VOLUME_SCALE), max=1.0)
        return torch.cat([rates, volume], dim=1)
