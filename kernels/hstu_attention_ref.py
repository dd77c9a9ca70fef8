"""PyTorch twin of `hstu_attention` (docs/design.md §6): plain, slow, obviously correct; builds the dense mask.

out_i = sum_j mask(i, j) * SiLU(alpha * q_i . k_j) / S * v_j over each jagged sequence, S = scaling_seqlen or
max_seq_len. Sequences are padded to the longest one of their length group (lengths up to the same power of
two), so memory is O(B * H * N^2).

Mask, per sequence of n tokens: T = min(num_targets, n) candidates at the end, K = min(contextual_len, n - T)
contextual tokens first, U = n - T - K history tokens between. Ids: contextual 0, history 1..U, candidates U+1;
i attends j when i == j or id_j < id_i (and, if max_attn_len > 0, id_i - id_j <= max_attn_len); contextual
tokens also attend every token with id <= U.

Query-time mask (query_time=True, needs num_targets): the last W = min(T, U) history tokens are the candidates'
own events in candidate order (history token U-W+k, 0-based, is candidate k with its real action), so only
candidates strictly after it may see it. Candidate c gets the query id min(U - W + c + 1, U + 1) while every
candidate key keeps the id U+1, and the rule above applies with that query id (so candidate c sees contextual
tokens, history ids 1..U-W+c and itself, never another candidate); contextual tokens attend ids <= U - W only
(plus themselves); history queries are unchanged. With W = 0 this is the mask above.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def token_ids(
    lengths: torch.Tensor, n_max: int, num_targets: torch.Tensor | None, contextual_len: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-position mask ids of docs/design.md §6: contextual 0, history 1..U, candidates U+1.

    Args:
        lengths: int64 [B] sequence lengths.
        n_max: padded length N.
        num_targets: int64 [B] candidates at the end of each sequence, or None (no candidates).
        contextual_len: K contextual tokens at the start of each sequence.

    Returns:
        ids int64 [B, N] and U int64 [B] (history length). Counts are clamped to the sequence: candidates
        first (T = min(num_targets, n)), then contextual (K' = min(K, n - T)), U = n - T - K'.
    """
    pos = torch.arange(n_max, device=lengths.device)[None, :]  # [1, N]
    n = lengths[:, None]  # [B, 1]
    t = torch.zeros_like(n) if num_targets is None else num_targets.to(torch.int64)[:, None].clamp(min=0)
    t = torch.minimum(t, n)
    k = torch.clamp(n - t, max=contextual_len)
    u = n - t - k
    ids = torch.where(pos < k, 0, torch.where(pos < k + u, pos - k + 1, u + 1))
    return ids, u[:, 0]


def query_time_ids(
    lengths: torch.Tensor, n_max: int, num_targets: torch.Tensor, contextual_len: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Query ids of the query-time mask and the bound U - W of the history contextual queries see.

    Returns:
        ids int64 [B, N] as `token_ids`, except candidate c (0-based) has min(U - W + c + 1, U + 1) with
        W = min(T, U); and U - W int64 [B].
    """
    ids, u = token_ids(lengths, n_max, num_targets, contextual_len)
    pos = torch.arange(n_max, device=lengths.device)[None, :]  # [1, N]
    n = lengths[:, None]
    t = torch.minimum(num_targets.to(torch.int64)[:, None].clamp(min=0), n)
    seen = u[:, None] - torch.minimum(t, u[:, None])  # U - W
    cand = pos - (n - t)  # candidate index c where >= 0
    ids = torch.where(cand >= 0, torch.minimum(seen + cand + 1, u[:, None] + 1), ids)
    return ids, seen[:, 0]


def dense_mask(
    lengths: torch.Tensor, n_max: int, num_targets: torch.Tensor | None, contextual_len: int, max_attn_len: int,
    *, query_time: bool = False,
) -> torch.Tensor:
    """Boolean mask [B, N, N], True where token i (row) attends token j (column) (docs/design.md §6).

    query_time: the query-time mask of the module docstring (needs num_targets).
    """
    ids, u = token_ids(lengths, n_max, num_targets, contextual_len)
    id_i, id_j = ids[:, :, None], ids[:, None, :]
    if query_time:
        if num_targets is None:
            raise ValueError("dense_mask: query_time=True needs num_targets (the candidates per sequence)")
        qids, u = query_time_ids(lengths, n_max, num_targets, contextual_len)
        id_i = qids[:, :, None]
    mask = id_j < id_i
    if max_attn_len > 0:
        mask &= id_i - id_j <= max_attn_len
    mask |= (id_i == 0) & (id_j <= u[:, None, None]) & (contextual_len > 0)
    pos = torch.arange(n_max, device=lengths.device)
    mask |= pos[:, None] == pos[None, :]
    valid = pos[None, :] < lengths[:, None]  # [B, N]
    return mask & valid[:, :, None] & valid[:, None, :]


def _length_groups(lengths: torch.Tensor) -> list[torch.Tensor]:
    """Sequence indices grouped by the power of two their length rounds up to, ascending."""
    bucket = torch.ceil(torch.log2(lengths.clamp(min=1).double())).long()
    return [torch.nonzero(bucket == b).flatten() for b in torch.unique(bucket).tolist()]


def _to_padded(x: torch.Tensor, flat_index: torch.Tensor, batch: int, n_max: int) -> torch.Tensor:
    """Jagged [L, ...] -> padded [B, N, ...] with zeros (differentiable)."""
    padded = x.new_zeros((batch * n_max, *x.shape[1:]))
    return padded.index_copy(0, flat_index, x).view(batch, n_max, *x.shape[1:])


def hstu_attention_ref(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    seq_offsets: torch.Tensor,
    max_seq_len: int,
    *,
    alpha: float,
    scaling_seqlen: int | None = None,
    num_targets: torch.Tensor | None = None,
    contextual_len: int = 0,
    max_attn_len: int = 0,
    query_time: bool = False,
) -> torch.Tensor:
    """HSTU attention on jagged tensors, reference implementation.

    Sequences of about the same length (the same power of two) are padded and computed together: dense attention
    costs B * N^2, and one long sequence would otherwise pad every short one of the batch to its length (the CPU
    model's step, where this is the attention, computed several times the scores it needed; benchmarks/results/
    NOTES.md). Under torch.compile / torch.export the whole batch is one group, as the grouping depends on the
    lengths' values.

    Args:
        q, k: [L, H, Dqk]; v: [L, H, Dv]; seq_offsets: int64 [B+1]; num_targets: int64 [B] or None.
        query_time: the query-time mask of the module docstring; needs num_targets.

    Returns:
        [L, H, Dv] in the dtype of q.
    """
    if query_time and num_targets is None:
        raise ValueError("hstu_attention_ref: query_time=True needs num_targets (the candidates per sequence)")
    settings = (max_seq_len, alpha, scaling_seqlen, contextual_len, max_attn_len, query_time)
    lengths = seq_offsets[1:] - seq_offsets[:-1]
    if q.shape[0] == 0 or torch.compiler.is_compiling() or torch.compiler.is_exporting():
        return _padded_attention(q, k, v, seq_offsets, num_targets, *settings)
    groups = _length_groups(lengths)
    if len(groups) <= 1:
        return _padded_attention(q, k, v, seq_offsets, num_targets, *settings)
    out = v.new_zeros(v.shape)
    for seqs in groups:
        group_lengths = lengths[seqs]
        total = int(group_lengths.sum())
        starts = torch.cumsum(group_lengths, 0) - group_lengths
        tokens = (torch.repeat_interleave(seq_offsets[seqs] - starts, group_lengths, output_size=total)
                  + torch.arange(total, device=q.device))
        offsets = torch.cat([starts, starts.new_full((1,), total)])
        targets = None if num_targets is None else num_targets[seqs]
        part = _padded_attention(q[tokens], k[tokens], v[tokens], offsets, targets, *settings)
        out = out.index_copy(0, tokens, part)
    return out


def _padded_attention(q, k, v, seq_offsets, num_targets, max_seq_len, alpha, scaling_seqlen, contextual_len,
                      max_attn_len, query_time) -> torch.Tensor:
    """`hstu_attention_ref` on the batch padded to its longest sequence."""
    total, heads, _ = q.shape
    batch = seq_offsets.numel() - 1
    lengths = seq_offsets[1:] - seq_offsets[:-1]
    if total == 0 or batch == 0:
        return v.new_zeros(v.shape)
    n_max = lengths.max().item()  # stays symbolic under torch.export (an int() would freeze it)
    torch._check(n_max >= 1)
    scale = 1.0 / float(scaling_seqlen or max_seq_len)
    batch_of_token = torch.repeat_interleave(torch.arange(batch, device=q.device), lengths, output_size=total)
    flat_index = batch_of_token * n_max + torch.arange(total, device=q.device) - seq_offsets[batch_of_token]
    qp, kp, vp = (_to_padded(t, flat_index, batch, n_max) for t in (q, k, v))  # [B, N, H, D]
    scores = torch.einsum("bihd,bjhd->bhij", qp, kp) * alpha  # [B, H, N, N]
    mask = dense_mask(lengths, n_max, num_targets, contextual_len, max_attn_len, query_time=query_time)[:, None]
    attn = torch.where(mask, F.silu(scores) * scale, torch.zeros((), dtype=scores.dtype, device=q.device))
    out = torch.einsum("bhij,bjhd->bihd", attn.to(vp.dtype), vp)  # [B, N, H, Dv]
    return out.reshape(batch * n_max, heads, -1).index_select(0, flat_index)
