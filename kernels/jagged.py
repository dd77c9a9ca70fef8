"""Per-sample concatenation and split of jagged tensors (values [L, ...] + offsets int64 [B+1]).

PyTorch only, with no `backend` argument: the work is one index copy, memory-bound, and
`index_copy`/`index_select` already move each byte once; a Triton version would save only the index build.
`jagged_concat` needs no host synchronisation; `jagged_split` reads the split sizes once (`.sum().item()`).
`JaggedLayout` builds the concatenation's index once for several tensors of the same segments (the model lays out
its tokens and their position and time ids alike): the index build is a dozen small launches per segment, and
the training step is bound by the host that issues them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def _check_offsets(name: str, offsets: torch.Tensor, batch: int | None) -> None:
    if offsets.dtype != torch.int64 or offsets.dim() != 1 or offsets.numel() < 1:
        raise ValueError(f"{name}: expected int64 [B+1] offsets, got {offsets.dtype} {tuple(offsets.shape)}")
    if batch is not None and offsets.numel() != batch + 1:
        raise ValueError(f"{name}: expected [B+1]={batch + 1} offsets, got {offsets.numel()}")


def segment_index(lengths: torch.Tensor, total: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For ``total`` tokens laid out sample by sample with ``lengths [B]``: (sample of each token [total], its
    position in the sample). No host sync: ``total`` comes from a shape."""
    batch = lengths.numel()
    sample = torch.repeat_interleave(torch.arange(batch, device=lengths.device), lengths, output_size=total)
    starts = torch.cumsum(lengths, 0) - lengths  # [B]
    return sample, torch.arange(total, device=lengths.device) - starts[sample]


@dataclass(frozen=True)
class JaggedLayout:
    """Where the per-sample concatenation seg_0(b) | seg_1(b) | ... puts each segment's values.

    ``rows[i]``: int64 [L_i], the result row of each value of segment i; ``offsets``: int64 [B+1] of the result.
    """

    rows: list[torch.Tensor]
    offsets: torch.Tensor
    _all_rows: torch.Tensor

    @classmethod
    def of(cls, offsets: list[torch.Tensor], totals: list[int]) -> JaggedLayout:
        """The layout of segments with ``offsets`` (int64 [B+1] each, same B) holding ``totals`` values each
        (``offsets[i][-1]``, passed as ints so that no host sync is needed)."""
        if not offsets or len(offsets) != len(totals):
            raise ValueError(f"jagged_concat: expected equal non-empty lists, got {len(totals)} values, "
                             f"{len(offsets)} offsets")
        batch = offsets[0].numel() - 1
        for i, off in enumerate(offsets):
            _check_offsets(f"jagged_concat offsets[{i}]", off, batch)
        lengths = [off[1:] - off[:-1] for off in offsets]  # each [B]
        out_offsets = torch.cat([offsets[0].new_zeros(1), torch.cumsum(torch.stack(lengths).sum(0), 0)])
        start = out_offsets[:-1]  # where each sample's segment i begins in the result, [B]
        rows = []
        for off, seg_lengths, total in zip(offsets, lengths, totals):
            # value j of sample b sits at off[b] + p and goes to start[b] + p = j + (start[b] - off[b])
            shift = torch.repeat_interleave(start - off[:-1], seg_lengths, output_size=total)
            rows.append(torch.arange(total, device=off.device) + shift)
            start = start + seg_lengths
        return cls(rows, out_offsets, torch.cat(rows))

    def concat(self, values: list[torch.Tensor]) -> torch.Tensor:
        """The segments' values ([L_i, ...], same trailing shape and dtype) laid out: [sum L_i, ...]."""
        src = torch.cat(values)
        return src.new_empty(src.shape).index_copy(0, self._all_rows, src)


def jagged_concat(
    values: list[torch.Tensor], offsets: list[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenate several jagged tensors per sample: sample b of the result is seg_0(b) | seg_1(b) | ...

    Args:
        values: list of [L_i, ...] (same trailing shape and dtype); offsets: list of int64 [B+1] (same B).

    Returns:
        (values [sum L_i, ...], offsets int64 [B+1]).
    """
    layout = JaggedLayout.of(offsets, [v.shape[0] for v in values])  # checks the lists and the offsets
    return layout.concat(values), layout.offsets


def jagged_split(
    values: torch.Tensor, offsets: torch.Tensor, lengths: list[torch.Tensor]
) -> list[torch.Tensor]:
    """Inverse of `jagged_concat`: cut each sample into consecutive segments of the given lengths.

    Args:
        values: [L, ...]; offsets: int64 [B+1]; lengths: list of int64 [B], summing per sample to the lengths.

    Returns:
        list of [L_i, ...], L_i = lengths[i].sum().
    """
    _check_offsets("jagged_split offsets", offsets, None)
    before = torch.zeros_like(offsets[1:])
    outs = []
    for seg_lengths in lengths:
        total = int(seg_lengths.sum().item())
        sample, pos = segment_index(seg_lengths, total)
        outs.append(values.index_select(0, offsets[:-1][sample] + before[sample] + pos))
        before = before + seg_lengths
    return outs
