"""Which side values (e.g. video tags) users engage with one after another: a similarity learned by counting.

The exact side match (``history_summary.side_match``) says "the candidate has the tag of what the user just
engaged with". Tags are finer than interests: on the generated data 43 first tags fall on 16 topics, and a
candidate of the same topic under another tag is missed. A learned tag embedding did not find the grouping in a
few hundred steps (benchmarks/results/QUALITY_NOTES.md §13); counting does, from the first epoch. While the
model trains, every batch adds its histories' co-engagement pairs: two engaged events (any action bit) of one
sample, at most ``PAIR_DISTANCE`` engaged events apart, before the window (at query time the window's actions
are the candidates' labels, so they are never counted). From the counts ``n_ab`` (symmetric, ``n_a`` their row
sums, ``N`` the total):

    pmi(a, b)  = log((n_ab + 1) / (n_a n_b / N + 1))
    sim(a, b)  = clamp(max(pmi(a, b), 0) / max(pmi(b, b), eps), max=1),   sim(a, a) = 1,   row 0 matches nothing

On the generated logs of 12,000 users, the pmi of two tags of one topic is above that of two tags of different
topics for 99.6% of pairs, and the recency-weighted match through ``sim`` predicts a click as well as the
generator's own topics do (0.623 AUC alone; the exact tag 0.595; QUALITY_NOTES.md §15).

The counts are a buffer: saved in checkpoints and with the model, frozen in eval mode, so a version scores with
the similarity it was trained with. Counting adds integers, so the result does not depend on the order of the
adds (a retry is identical).
"""

from __future__ import annotations

import torch
from torch import nn

from kernels.jagged import segment_index

PAIR_DISTANCE = 3  # pairs up to 3 engaged events apart: the generator's short-term interest spans ~2-4 of them


class SideAffinity(nn.Module):
    """Co-engagement counts over a side feature's ``num_rows`` rows and the similarity they give."""

    def __init__(self, num_rows: int):
        super().__init__()
        # float64: exact integer counts far beyond float32's 2^24 per pair.
        self.register_buffer("pairs", torch.zeros(num_rows, num_rows, dtype=torch.float64))

    @torch.no_grad()
    def count(self, side: torch.Tensor, action: torch.Tensor, uih_lengths: torch.Tensor,
              window_lengths: torch.Tensor | None = None) -> None:
        """Adds the pairs of one batch's histories.

        Args:
            side: int64 [U] each history event's side row; action: int64 [U] its action bitmask;
            uih_lengths: int64 [B]; window_lengths: int64 [B] (query time) the last events of each history
                that belong to the window and are not counted.
        """
        sample, index = segment_index(uih_lengths, side.numel())
        before = uih_lengths if window_lengths is None else uih_lengths - window_lengths
        keep = (action != 0) & (side != 0) & (index < before[sample])
        sample, side = sample[keep], side[keep]  # engaged events, in order within each sample
        ones = torch.ones((), dtype=self.pairs.dtype, device=self.pairs.device)
        for distance in range(1, PAIR_DISTANCE + 1):
            same = sample[distance:] == sample[:-distance]
            a, b = side[:-distance][same], side[distance:][same]
            self.pairs.index_put_((a, b), ones.expand_as(a), accumulate=True)
            self.pairs.index_put_((b, a), ones.expand_as(a), accumulate=True)

    def similarity(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """``sim(a, b)`` float32 in [0, 1] of rows ``a`` and ``b`` (same shape; the module docstring): 0 for row
        0 and, before any count, for every pair but ``a == b``. Gathered per pair, never as a [V, V] matrix (the
        table has ~1,000 rows, a batch asks for a few thousand pairs)."""
        pairs = self.pairs
        n = pairs.sum(1)  # [V]
        total = n.sum().clamp(min=1.0)

        def pmi(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return torch.log((pairs[x, y] + 1.0) / (n[x] * n[y] / total + 1.0))

        sim = (pmi(a, b).clamp(min=0.0) / pmi(b, b).clamp(min=1e-3)).clamp(max=1.0)
        sim = torch.where(a == b, 1.0, sim)
        return torch.where((a == 0) | (b == 0), 0.0, sim).float()
