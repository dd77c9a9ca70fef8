"""Per-sample concatenation and split of jagged tensors (values [L, ...] + offsets int64 [B+1]).

PyTorch only, with no `backend` argument: the work is one index copy, memory-bound, and
`index_copy`/`index_select` already move each byte once; a Triton version would save only the index build.
`jagged_concat` needs no host synchronisation; `jagged_split` reads the split sizes once (`.sum().item()`).
"""

from __future__ import annotations

import torch


def _check_offsets(name: str, offsets: torch.Tensor, batch: int | None) -> None:
    if offsets.dtype != torch.int64 or offsets.dim() != 1 or offsets.numel() < 1:
        raise ValueError(f"{name}: expected int64 [B+1] offsets, got {offsets.dtype} {tuple(offsets.shape)}")
    if batch is not None and offsets.numel() != batch + 1:
        raise ValueError(f"{name}: expected [B+1]={batch + 1} offsets, got {offsets.numel()}")


def _positions(lengths: torch.Tensor, total: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For `total` tokens laid out sample by sample with `lengths` [B]: (sample index, position in sample)."""
    batch = lengths.numel()
    sample = torch.repeat_interleave(torch.arange(batch, device=lengths.device), lengths, output_size=total)
    starts = torch.cumsum(lengths, 0) - lengths  # [B]
    return sample, torch.arange(total, device=lengths.device) - starts[sample]


def jagged_concat(
    values: list[torch.Tensor], offsets: list[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenate several jagged tensors per sample: sample b of the result is seg_0(b) | seg_1(b) | ...

    Args:
        values: list of [L_i, ...] (same trailing shape and dtype); offsets: list of int64 [B+1] (same B).

    Returns:
        (values [sum L_i, ...], offsets int64 [B+1]).
    """
    if not values or len(values) != len(offsets):
        raise ValueError(f"jagged_concat: expected equal non-empty lists, got {len(values)} values, "
                         f"{len(offsets)} offsets")
    batch = offsets[0].numel() - 1
    for i, off in enumerate(offsets):
        _check_offsets(f"jagged_concat offsets[{i}]", off, batch)
    lengths = [off[1:] - off[:-1] for off in offsets]  # each [B]
    out_lengths = torch.stack(lengths).sum(0)
    out_offsets = torch.cat([out_lengths.new_zeros(1), torch.cumsum(out_lengths, 0)])
    before = torch.zeros_like(out_lengths)  # tokens of earlier segments in each sample, [B]
    dest = []
    for vals, seg_lengths in zip(values, lengths):
        sample, pos = _positions(seg_lengths, vals.shape[0])
        dest.append(out_offsets[sample] + before[sample] + pos)
        before = before + seg_lengths
    src = torch.cat(values)
    return src.new_empty(src.shape).index_copy(0, torch.cat(dest), src), out_offsets


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
        sample, pos = _positions(seg_lengths, total)
        outs.append(values.index_select(0, offsets[:-1][sample] + before[sample] + pos))
        before = before + seg_lengths
    return outs
