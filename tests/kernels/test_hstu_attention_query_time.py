"""The query-time mask of hstu_attention (query_time=True): twin vs a loop-built mask, Triton vs twin, no label leak.

Under query_time the last W = min(T, U) history tokens are the candidates' own events (history window token k is
candidate k with its real action): only candidates strictly after k may see it, contextual tokens never.
"""

from __future__ import annotations

import importlib
import random

import pytest
import torch
from kernel_inputs import DEVICE, attention_inputs, compare_with_twin, offsets_of, run_with_grads

from kernels import hstu_attention
from kernels.hstu_attention_ref import dense_mask, hstu_attention_ref

# The module, not the function the package re-exports under the same name.
hstu_module = importlib.import_module("kernels.hstu_attention")

# ----------------------------------------------------------------------------------------------- twin mask


def _loop_mask(n: int, num_targets: int, contextual_len: int, max_attn_len: int) -> torch.Tensor:
    """The query-time mask [n, n] of one sequence, pair by pair from the written semantics."""
    t = min(num_targets, n)
    k = min(contextual_len, n - t)
    u = n - t - k
    w = min(t, u)

    def kind(p):  # ("ctx", 0) / ("hist", id 1..U) / ("cand", c)
        if p < k:
            return "ctx", 0
        if p < k + u:
            return "hist", p - k + 1
        return "cand", p - k - u

    def in_window(query_id, key_id):
        return max_attn_len == 0 or query_id - key_id <= max_attn_len

    mask = torch.zeros(n, n, dtype=torch.bool)
    for i in range(n):
        kind_i, a = kind(i)
        for j in range(n):
            kind_j, b = kind(j)
            if i == j:
                keep = True
            elif kind_i == "ctx":  # contextual tokens and the history before the window
                keep = kind_j == "ctx" or (kind_j == "hist" and b <= u - w)
            elif kind_i == "hist":  # causal over contextual + history, as without query time
                keep = (kind_j == "ctx" and in_window(a, 0)) or (kind_j == "hist" and b < a and in_window(a, b))
            else:  # candidate a: history before the window, window tokens of earlier candidates; no candidate
                query_id = min(u - w + a + 1, u + 1)
                before_window = kind_j == "hist" and b <= u - w
                earlier_window = kind_j == "hist" and b > u - w and (b - (u - w) - 1) < a
                keep = (kind_j == "ctx" or before_window or earlier_window) and in_window(query_id, b)
            mask[i, j] = keep
    return mask


def test_mask_matches_hand_worked_case():
    # n=7: 1 contextual, 4 history (ids 1..4), 2 candidates; W = 2: history ids 3, 4 are candidates 0, 1.
    expected = torch.tensor([
        [1, 1, 1, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0, 0],
        [1, 1, 1, 0, 0, 0, 0],
        [1, 1, 1, 1, 0, 0, 0],
        [1, 1, 1, 1, 1, 0, 0],
        [1, 1, 1, 0, 0, 1, 0],  # candidate 0: nothing of the window
        [1, 1, 1, 1, 0, 0, 1],  # candidate 1: window token 0 (history id 3)
    ], dtype=torch.bool)
    mask = dense_mask(torch.tensor([7]), 7, torch.tensor([2]), 1, 0, query_time=True)[0]
    assert torch.equal(mask, expected)


@pytest.mark.parametrize("contextual_len", [0, 1, 3])
@pytest.mark.parametrize("max_attn_len", [0, 1, 4])
def test_twin_mask_matches_loop_construction(contextual_len, max_attn_len):
    rng = random.Random(contextual_len * 10 + max_attn_len)
    # T > U, T = 0, T >= n, n < K + T, empty and single-token sequences, and random ones.
    lengths = [0, 1, 2, 9, 9, 12, 6, 5] + [rng.randint(0, 16) for _ in range(8)]
    targets = [0, 1, 3, 0, 6, 3, 9, 4] + [rng.randint(0, 10) for _ in range(8)]
    n_max = max(lengths)
    mask = dense_mask(torch.tensor(lengths), n_max, torch.tensor(targets), contextual_len, max_attn_len,
                      query_time=True)
    for b, (n, t) in enumerate(zip(lengths, targets)):
        want = torch.zeros(n_max, n_max, dtype=torch.bool)
        want[:n, :n] = _loop_mask(n, t, contextual_len, max_attn_len)
        assert torch.equal(mask[b], want), f"sequence {b}: n={n}, T={t}"


def test_twin_mask_without_a_window_is_the_plain_mask():
    # W = min(T, U) = 0 (no candidates, or no history): the query-time mask is the plain one.
    lengths, targets = torch.tensor([6, 4, 0, 5]), torch.tensor([0, 4, 2, 7])
    for contextual_len, max_attn_len in ((0, 0), (2, 0), (2, 3)):
        assert torch.equal(dense_mask(lengths, 6, targets, contextual_len, max_attn_len, query_time=True),
                           dense_mask(lengths, 6, targets, contextual_len, max_attn_len))
    # Contextual tokens cover the whole history: U = 0.
    assert torch.equal(dense_mask(lengths, 6, targets, 6, 0, query_time=True), dense_mask(lengths, 6, targets, 6, 0))


# ----------------------------------------------------------------------------------------------- Triton vs twin

# Lengths crossing block boundaries; the window of the 200-token sequence starts at 130 - 70 = 60 (before the
# end of the first 64-key block) and the 130-token one has T = 90 > U = 40.
LENGTHS = [5, 0, 1, 37, 200, 130]
TARGETS = [2, 0, 1, 30, 70, 90]
MAX_LEN = 200


def _run(fn, q, k, v, offsets, grad_out, **kwargs):
    return run_with_grads(fn, q, k, v, offsets, grad_out, MAX_LEN, **kwargs)


def _compare_with_twin(kwargs, lengths=LENGTHS, targets=TARGETS, heads=1, dim_qk=16, dim_v=32, seed=0):
    compare_with_twin({"num_targets": torch.tensor(targets), "query_time": True, **kwargs}, lengths=lengths,
                      max_len=MAX_LEN, heads=heads, dim_qk=dim_qk, dim_v=dim_v, seed=seed)


CASES = {
    "plain": {},
    "contextual": {"contextual_len": 9},
    "window": {"max_attn_len": 40},
    "window_with_context": {"contextual_len": 3, "max_attn_len": 13, "scaling_seqlen": 50},
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_triton_matches_twin_fp32(case):
    _compare_with_twin(CASES[case])


@pytest.mark.skipif(DEVICE == "cuda", reason="the fixed launch config is the interpreter's; CUDA autotunes")
@pytest.mark.parametrize(("block_m", "block_n"), [(16, 32), (32, 16)])
def test_triton_matches_twin_with_other_blocks(monkeypatch, block_m, block_n):
    # Unequal blocks as the autotuner picks on GPU: more block boundaries inside the window and the candidates
    # (windows at 30..60 of 90 tokens, and 3..24 of 61 with T = 40 > U = 21).
    monkeypatch.setattr(hstu_module, "_fixed_config", lambda dim: {"BLOCK_M": block_m, "BLOCK_N": block_n,
                                                                   "num_warps": 4, "num_stages": 2})
    _compare_with_twin({"contextual_len": 3, "max_attn_len": 0 if block_m < block_n else 25},
                       lengths=[5, 90, 61], targets=[2, 30, 40])


# ----------------------------------------------------------------------------------------------- arguments


def test_query_time_without_num_targets_raises():
    q, k, v, offsets = attention_inputs([3], 1, 16, 16, seed=0)
    for backend in ("pytorch", "triton"):
        with pytest.raises(ValueError, match="num_targets"):
            hstu_attention(q, k, v, offsets, 4, alpha=0.5, query_time=True, backend=backend)
    with pytest.raises(ValueError, match="num_targets"):
        hstu_attention_ref(q, k, v, offsets, 4, alpha=0.5, query_time=True)
    with pytest.raises(ValueError, match="num_targets"):
        dense_mask(torch.tensor([3]), 3, None, 0, 0, query_time=True)


@pytest.mark.parametrize("fn", [hstu_attention, hstu_attention_ref], ids=["triton", "twin"])
def test_no_candidates_is_the_plain_mask(fn):
    lengths = [5, 0, 70]
    q, k, v, offsets = attention_inputs(lengths, 1, 16, 16, seed=4, device=DEVICE)
    grad_out = torch.randn(q.shape[0], 1, 16, generator=torch.Generator().manual_seed(5)).to(DEVICE)
    zeros = torch.zeros(len(lengths), dtype=torch.int64, device=DEVICE)
    runs = [_run(fn, q, k, v, offsets, grad_out, num_targets=zeros, contextual_len=2, query_time=query_time)
            for query_time in (False, True)]
    (out_plain, grads_plain), (out_qt, grads_qt) = runs
    torch.testing.assert_close(out_qt, out_plain, rtol=0, atol=0)
    for got, want in zip(grads_qt, grads_plain):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


# ----------------------------------------------------------------------------------------------- label leak

# n = 200, 5 contextual tokens, T = 70 candidates: U = 125, W = 70, window tokens at positions 60..129, candidates
# at 130..199. Window token k = 2 (position 62) lies in the first 64-key block; the candidate query blocks after it
# would be treated as fully attending that block without the query-time range limit.
LEAK_N, LEAK_CTX, LEAK_T, LEAK_K = 200, 5, 70, 2


@pytest.mark.parametrize("fn", [hstu_attention, hstu_attention_ref], ids=["triton", "twin"])
def test_window_token_leaks_to_no_earlier_candidate(fn):
    q, k, v, offsets = attention_inputs([LEAK_N], 1, 16, 16, seed=6, device=DEVICE)
    q, k, v = (t.detach() for t in (q, k, v))
    kwargs = {"num_targets": torch.tensor([LEAK_T], device=DEVICE), "contextual_len": LEAK_CTX, "query_time": True}
    hist_end = LEAK_N - LEAK_T
    win_start = hist_end - LEAK_T  # W = min(T, U) = T here
    token = win_start + LEAK_K
    first_cand, leak_to = hist_end, hist_end + LEAK_K + 1  # candidates c <= k, and candidate k + 1
    base = fn(q, k, v, offsets, LEAK_N, alpha=0.3, **kwargs)
    for name in ("k", "v"):
        k2, v2 = k.clone(), v.clone()
        (k2 if name == "k" else v2)[token] += 3.0
        out = fn(q, k2, v2, offsets, LEAK_N, alpha=0.3, **kwargs)
        assert torch.equal(out[:LEAK_CTX], base[:LEAK_CTX]), f"{name}: a contextual output changed"
        assert torch.equal(out[first_cand:leak_to], base[first_cand:leak_to]), f"{name}: a candidate c <= k changed"
        assert not torch.equal(out[leak_to], base[leak_to]), f"{name}: candidate k + 1 does not see window token k"

    # Backward: gradients from contextual and candidate c <= k outputs never reach window token k's key / value.
    q, k, v = (t.requires_grad_() for t in (q, k, v))
    out = fn(q, k, v, offsets, LEAK_N, alpha=0.3, **kwargs)
    grad_out = torch.zeros_like(out)
    grad_out[:LEAK_CTX] = 1.0
    grad_out[first_cand:leak_to] = 1.0
    _, dk, dv = torch.autograd.grad(out, (q, k, v), grad_out, retain_graph=True)
    assert not dv[:LEAK_CTX].eq(0).all() and not dk[:LEAK_CTX].eq(0).all()  # the grads did flow somewhere
    assert dk[token].eq(0).all() and dv[token].eq(0).all(), "window token k gets gradient from c <= k"
    grad_out = torch.zeros_like(out)
    grad_out[leak_to] = 1.0
    _, dk, dv = torch.autograd.grad(out, (q, k, v), grad_out)
    assert not dv[token].eq(0).all(), "window token k gets no gradient from candidate k + 1"


def test_a_sample_does_not_depend_on_other_samples():
    q, k, v, offsets = attention_inputs([6, 90], 1, 16, 16, seed=7, device=DEVICE)
    targets = torch.tensor([2, 30], device=DEVICE)
    alone = hstu_attention(q[6:], k[6:], v[6:], offsets_of([90], DEVICE), 90, alpha=0.3, num_targets=targets[1:],
                           query_time=True)
    together = hstu_attention(q, k, v, offsets, 90, alpha=0.3, num_targets=targets, query_time=True)
    torch.testing.assert_close(together[6:], alone, rtol=1e-5, atol=1e-6)
