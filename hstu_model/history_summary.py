"""A summary of each sample's action history, read by the tower beside the encoder (an extension of the spec).

Per candidate, over the ``U`` history events it may see (its sample's history; with query-time history the
events before the window and the window's events before its own), with actions ``a_1..a_U`` (bitmasks) and
per action bit ``k`` of ``action_weights``:

    rate_k      = #{i : a_i & w_k} / (U + 1)                 (the whole visible history)
    recent_k    = #{i > U - R : a_i & w_k} / (min(U, R) + 1)  (its last R events)
    length      = log1p(U) / log1p(max_seq_len)
With a ``prior`` (the pooled rate p_k of each bit over the training histories, ``HistoryPrior``) the two rates are
shrunk towards it instead: ``(#... + S * p_k) / (events + S)``, S = ``HISTORY_SMOOTHING`` pseudo-events, so a user
with 3 events reads close to the pooled rate and one with 300 reads their own; the tower's wide term reads these
as logits (a logistic regression on such logits ranks clicks at 0.810 on the real held-out day against 0.796 on
``log(rate + 0.01)`` of the unshrunk rates: benchmarks/results/QUALITY_NOTES.md §17).
and per candidate ``in_history`` = 1 when its item id occurs in its own sample's history. When the history and
candidate groups hold a second item feature (a side feature such as the video's tag), ``side_match`` puts in
front how the candidate's value matches its last visible events' values: the short-term interest a sequence
model would otherwise have to learn from ids (benchmarks/results/QUALITY_NOTES.md §12).

Why: a user's own past rate of an action is the strongest single predictor of a rare action on real logs
(comment: 0.74 AUC alone), and the encoder, trained on a few thousand samples, memorises ids long before its
attention learns to average action bits (measured: benchmarks/results/quality_diagnose.json). The summary
hands the tower those counts directly; it reads only the history, so labels never leak into it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from kernels.jagged import segment_index

RECENT_EVENTS = 20
HISTORY_SMOOTHING = 20.0  # pseudo-events at the pooled rate added to each history with a prior
MATCH_DECAY = 0.8  # weight of the k-th most recent event in the recency-weighted side match: MATCH_DECAY ** (k - 1)


def _prefix_counts(actions: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``P [U + 1, A]`` float32: ``P[i]`` counts each action bit over the first ``i`` history events of the
    batch (samples are contiguous, so a sample's events ``[a, b)`` count ``P[b] - P[a]``)."""
    bits = ((actions[:, None] & weights[None, :]) != 0).to(torch.int64)  # [U, A]
    return torch.cat([bits.new_zeros(1, weights.numel()), bits.cumsum(0)]).float()


def history_summary(uih_action: torch.Tensor, uih_lengths: torch.Tensor, uih_item: torch.Tensor,
                    candidate_item: torch.Tensor, candidate_lengths: torch.Tensor, action_weights: torch.Tensor,
                    max_seq_len: int, num_items: int, window_lengths: torch.Tensor | None = None,
                    prior: torch.Tensor | None = None) -> torch.Tensor:
    """The summary features of every candidate.

    Args:
        uih_action: int64 [U] action bitmasks; uih_lengths: int64 [B]; uih_item: int64 [U] history item ids.
        candidate_item: int64 [C] candidate item ids; candidate_lengths: int64 [B].
        action_weights: int64 [A] the action bits; num_items: ids are below it (the table's rows).
        window_lengths: int64 [B] (query-time history) the last W history events of each sample are the
            window's own events, one per candidate: candidate c counts the events before the window and the
            window's first c events, never its own or later ones (their actions are labels).
        prior: float32 [A] the rates are shrunk towards (``HistoryPrior.prior``); None: ``count / (events + 1)``.
    Returns:
        float32 [C, 2A + 2]: rates, recent rates, length, in_history.
    """
    sample, index = segment_index(uih_lengths, uih_action.numel())  # sample of each event, position in it
    candidate_sample, _ = segment_index(candidate_lengths, candidate_item.numel())
    pre = uih_lengths if window_lengths is None else uih_lengths - window_lengths  # [B] events before the window
    # [C] first event of its sample, history events each candidate sees
    start, visible = visible_history(uih_lengths, candidate_lengths, candidate_item.numel(), window_lengths)
    prefix = _prefix_counts(uih_action, action_weights)  # [U + 1, A]
    end = prefix[start + visible]
    n = visible.float()[:, None]  # [C, 1]
    smoothing, pseudo = (1.0, 0.0) if prior is None else (HISTORY_SMOOTHING, HISTORY_SMOOTHING * prior[None, :])
    rates = (end - prefix[start] + pseudo) / (n + smoothing)
    recent = torch.clamp(visible - RECENT_EVENTS, min=0)
    recent_rates = (end - prefix[start + recent] + pseudo) / (n.clamp(max=RECENT_EVENTS) + smoothing)
    length = torch.log1p(n) / math.log1p(max_seq_len)
    # (sample, item) keys: a candidate is "in history" only for its own sample's events before the window.
    keys = torch.where(index < pre[sample], sample * num_items + uih_item, -1)
    in_history = torch.isin(candidate_sample * num_items + candidate_item, keys).float()
    return torch.cat([rates, recent_rates, length, in_history[:, None]], dim=1)


class HistoryPrior(nn.Module):
    """Each action bit's pooled rate over the history events of the training batches (buffers saved with the model,
    counted only while training): what ``history_summary`` shrinks a short history's rates towards."""

    def __init__(self, num_actions: int):
        super().__init__()
        self.register_buffer("event_counts", torch.zeros(num_actions + 1, dtype=torch.float64))  # [events, per bit]

    def count(self, uih_action: torch.Tensor, action_weights: torch.Tensor) -> None:
        """Adds a batch's history events (int64 [U] bitmasks); with query-time history a window's events are
        counted too: they are history to the candidates after them."""
        self.event_counts[0] += uih_action.numel()
        self.event_counts[1:] += ((uih_action[:, None] & action_weights[None, :]) != 0).sum(0).to(torch.float64)

    def prior(self) -> torch.Tensor:
        """float32 [A]: each bit's rate over the counted events (0.5 before any)."""
        return ((self.event_counts[1:] + 1) / (self.event_counts[0] + 2)).float()


def visible_history(uih_lengths: torch.Tensor, candidate_lengths: torch.Tensor, num_candidates: int,
                    window_lengths: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per candidate: the index of its sample's first history event in the batch, and how many events it sees."""
    candidate_sample, candidate_index = segment_index(candidate_lengths, num_candidates)
    pre = uih_lengths if window_lengths is None else uih_lengths - window_lengths
    visible = pre[candidate_sample]
    if window_lengths is not None:
        visible = visible + torch.minimum(candidate_index, window_lengths[candidate_sample])
    return (torch.cumsum(uih_lengths, 0) - uih_lengths)[candidate_sample], visible


def side_match(uih_side: torch.Tensor, uih_action: torch.Tensor, uih_lengths: torch.Tensor,
               candidate_side: torch.Tensor, candidate_lengths: torch.Tensor, action_weights: torch.Tensor,
               window_lengths: torch.Tensor | None = None,
               similarity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """How each candidate's side feature (e.g. its video's tag) matches its last ``RECENT_EVENTS`` visible events.

    Over those events ``e_1..e_R`` (``e_1`` the most recent; row 0, an unknown value, never matches), with
    ``m(e) = [side(e) == side(c)]``:
        share      = sum_e m(e) / (R + 1)
        share_k    = sum_{e : action bit k} m(e) / (#{e : action bit k} + 1)
        recency_k  = sum_e m(e) * bit k * MATCH_DECAY ** (age - 1) / sum_age MATCH_DECAY ** (age - 1)
    With ``similarity`` (rows, rows -> weights in [0, 1]; ``side_affinity.SideAffinity.similarity``) the same
    numbers follow with the soft match ``m(e) = similarity(side(e), side(c))``.
    Returns:
        float32 [C, 1 + 2A], or [C, 2 (1 + 2A)] with ``similarity`` (exact, then soft).
    """
    num_candidates, events = candidate_side.numel(), uih_side.numel()
    start, visible = visible_history(uih_lengths, candidate_lengths, num_candidates, window_lengths)
    ages = torch.arange(1, RECENT_EVENTS + 1, device=candidate_side.device)
    valid = ages[None, :] <= visible[:, None]  # [C, R]
    # One padding event at the end, so the events a candidate does not have index something (masked by valid).
    uih_side, uih_action = nn.functional.pad(uih_side, (0, 1)), nn.functional.pad(uih_action, (0, 1))
    index = (start[:, None] + visible[:, None] - ages[None, :]).clamp(0, events)
    side = uih_side[index]  # [C, R]
    bits = (valid[..., None] & ((uih_action[index][..., None] & action_weights) != 0)).float()  # [C, R, A]
    exact = valid & (side == candidate_side[:, None]) & (candidate_side[:, None] != 0)
    out = [_match_numbers(exact.float(), valid, bits)]
    if similarity is not None:
        out.append(_match_numbers(similarity(side, candidate_side[:, None].expand_as(side)) * valid, valid, bits))
    return torch.cat(out, dim=1)


def _match_numbers(match: torch.Tensor, valid: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    """``match [C, R]`` (0 where not valid), ``valid [C, R]``, ``bits [C, R, A]`` -> share, share_k, recency_k."""
    matched = match[..., None] * bits
    share = match.sum(1, keepdim=True) / (valid.float().sum(1, keepdim=True) + 1)
    per_action = matched.sum(1) / (bits.sum(1) + 1)
    decay = MATCH_DECAY ** torch.arange(match.shape[1], device=match.device, dtype=torch.float32)
    recency = (matched * decay[None, :, None]).sum(1) / decay.sum()
    return torch.cat([share, per_action, recency], dim=1)


class HistorySummaryEncoder(nn.Module):
    """``[C, 2A + 2]`` summary (``[C, 6A + 4]`` with the exact and soft side match in front, and the item
    counters' ``extra`` columns before them) -> ``[C, D]``
    (Linear, SiLU, Linear): the tower's second input."""

    def __init__(self, num_actions: int, width: int, side_match: bool = False, extra: int = 0):
        super().__init__()
        # extra: columns put in front by the model (the item counters' rates, hstu_model/item_counters.py)
        self.input_dim = 2 * num_actions + 2 + (2 * (1 + 2 * num_actions) if side_match else 0) + extra
        self.net = nn.Sequential(nn.Linear(self.input_dim, width), nn.SiLU(), nn.Linear(width, width))

    def forward(self, summary: torch.Tensor) -> torch.Tensor:
        return self.net(summary)
