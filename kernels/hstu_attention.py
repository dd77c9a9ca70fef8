"""HSTU attention on jagged sequences (docs/design.md §6): Triton forward/backward kernels and the public function.

out_i = sum_j mask(i, j) * SiLU(alpha * q_i . k_j) / S * v_j, S = scaling_seqlen or max_seq_len. There is no
softmax, so a row block needs no running max: the forward streams key/value blocks and accumulates
[BLOCK_M, Dv] in fp32; the L x L score matrix never exists. Backward recomputes the scores: one kernel per
key block writes dK, dV (loops over the query blocks that attend it), one per query block writes dQ. No
atomics, so gradients are deterministic.

Mask (docs/design.md §6), per sequence of n tokens with T candidates, K contextual tokens and U = n - T - K history
tokens: ids are 0 (contextual), 1..U (history), U+1 (candidates); i attends j when i == j or id_j < id_i (and,
if max_attn_len > 0, id_i - id_j <= max_attn_len); contextual tokens also attend every token with id <= U.
Counts are clamped to the sequence: T = min(num_targets, n), then K = min(contextual_len, n - T).

Query-time mask (query_time=True, needs num_targets): the last W = min(T, U) history tokens are the candidates'
own events, in candidate order: history token U-W+k (0-based; id U-W+k+1) is the same event as candidate k and
carries its real action, so only candidates strictly after it may see it. Candidate c gets the QUERY id
min(U - W + c + 1, U + 1) while every candidate KEY keeps the id U+1, and the rule above is applied with that
query id (window included): candidate c sees contextual tokens, history ids 1..U-W+c and itself, never another
candidate. Contextual tokens attend only ids <= U - W (and themselves); history queries are unchanged. With W = 0
this is the mask above. In the kernels, win_start = K + U - W is the position of the first window token
(hist_end when query_time is off): contextual queries see keys before it.
"""

from __future__ import annotations

import contextlib

import torch
import triton
import triton.language as tl

from kernels.backend import LazyKernel, check_backend
from kernels.hstu_attention_ref import hstu_attention_ref

try:  # host-side tensor descriptors (Hopper TMA loads); absent from older Triton versions
    from triton.tools.tensor_descriptor import TensorDescriptor
except ImportError:  # pragma: no cover - the pointer loads serve every launch then
    TensorDescriptor = None

# ----------------------------------------------------------------------------------------------- helpers


def _ids(pos, n_ctx, hist_end, n_hist):
    """docs/design.md §6 mask ids of positions: contextual 0, history 1..U, candidates U+1."""
    return tl.where(pos < n_ctx, 0, tl.where(pos < hist_end, pos - n_ctx + 1, n_hist + 1))


def _query_ids(pos, n_ctx, hist_end, n_hist, win_start, QUERY_TIME: tl.constexpr):
    """Mask ids of query positions: `_ids`, except that under the query-time mask candidate c = pos - hist_end
    has min(U - W + c + 1, U + 1), U - W = win_start - n_ctx."""
    if QUERY_TIME:
        cand = tl.minimum(pos - hist_end + (win_start - n_ctx) + 1, n_hist + 1)
        return tl.where(pos < n_ctx, 0, tl.where(pos < hist_end, pos - n_ctx + 1, cand))
    else:
        return _ids(pos, n_ctx, hist_end, n_hist)


def _keep(pos_i, id_i, pos_j, id_j, win_start, max_attn_len, HAS_WINDOW: tl.constexpr):
    """docs/design.md §6 mask on broadcastable query (i, query ids) / key (j) operands: True where query i attends key j.
    win_start: contextual queries see every key before it (hist_end, or the window start under query time)."""
    keep = id_j < id_i
    if HAS_WINDOW:
        keep = keep & (id_i - id_j <= max_attn_len)
    keep = keep | ((id_i == 0) & (pos_j < win_start))  # contextual queries see every id <= U (U - W)
    return keep | (pos_i == pos_j)


def _sequence(SEQ_OFFSETS, NUM_TARGETS, pid_bh, num_heads, contextual_len, HAS_TARGETS: tl.constexpr,
              QUERY_TIME: tl.constexpr):
    """The program's head and the layout of its sequence: (h, seq_start, n, n_ctx, hist_end, n_hist, win_start);
    positions [0, n_ctx) are contextual, [n_ctx, hist_end) history, [hist_end, n) candidates (counts clamped
    to n); under the query-time mask [win_start, hist_end) are the W = min(T, U) window tokens, else
    win_start = hist_end."""
    b = pid_bh // num_heads
    h = pid_bh % num_heads
    seq_start = tl.load(SEQ_OFFSETS + b)
    n = (tl.load(SEQ_OFFSETS + b + 1) - seq_start).to(tl.int32)
    n_tgt = 0
    if HAS_TARGETS:
        n_tgt = tl.minimum(tl.maximum(tl.load(NUM_TARGETS + b).to(tl.int32), 0), n)
    n_ctx = tl.minimum(contextual_len, n - n_tgt)
    hist_end = n - n_tgt
    win_start = hist_end
    if QUERY_TIME:
        win_start = hist_end - tl.minimum(n_tgt, hist_end - n_ctx)
    return h, seq_start, n, n_ctx, hist_end, hist_end - n_ctx, win_start


def _key_range(m0, n, n_ctx, hist_end, n_hist, win_start, max_attn_len, HAS_WINDOW: tl.constexpr,
               QUERY_TIME: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """Keys a query block [m0, m0 + BLOCK_M) attends: (lo, full_hi, hi); [lo, full_hi) is attended by every row
    of the block (no mask needed), [full_hi, hi) needs the mask."""
    # Causal: keys up to the block's last row; contextual rows see every history token (before the window).
    hi = tl.minimum(m0 + BLOCK_M, n)
    if m0 < n_ctx:
        hi = tl.maximum(hi, win_start)
    lo = 0
    full_hi = 0
    if HAS_WINDOW:
        # Rows whose id exceeds max_attn_len see only keys with id >= id - max_attn_len (no contextual).
        if QUERY_TIME:
            # Candidate query ids restart at U - W + 1 <= U: a block reaching the candidates has its smallest
            # id at its first row or at the first candidate.
            first_id = _query_ids(m0, n_ctx, hist_end, n_hist, win_start, QUERY_TIME)
            if (m0 < hist_end) & (m0 + BLOCK_M > hist_end):
                first_id = tl.minimum(first_id, win_start - n_ctx + 1)
        else:
            first_id = tl.where(m0 < n_ctx, 0, tl.where(m0 < hist_end, m0 - n_ctx + 1, n_hist + 1))
        if first_id > max_attn_len:
            lo = ((n_ctx + first_id - max_attn_len - 1) // BLOCK_N) * BLOCK_N
        full_hi = lo
    else:
        if (m0 >= n_ctx) & (m0 + BLOCK_M <= hist_end):  # history rows: every earlier key is attended
            full_hi = (m0 // BLOCK_N) * BLOCK_N
    return lo, full_hi, hi


def _one_plus_tanh(h, FAST: tl.constexpr):
    """a = 1 + tanh(h) = 2 sigmoid(2h) in fp32; FAST: one tanh.approx (bf16/fp16 inputs only).

    The kernels work on h = alpha * q.k / 2, where SiLU(s) = h * a and SiLU'(s) = a / 2 * (1 + h * (2 - a)):
    two operations per score besides the tanh, and the constant factors (1/S, alpha / 2) are applied once to
    the accumulators instead of to every score."""
    if FAST:
        t = tl.inline_asm_elementwise("tanh.approx.f32 $0, $1;", "=r,r", [h], dtype=tl.float32,
                                      is_pure=True, pack=1)
        return t + 1.0
    else:
        return 2.0 * tl.sigmoid(2.0 * h)


def _load_pair(A, B, start, seq_start, h, n, stride_am, stride_ah, stride_bm, stride_bh, MASKED: tl.constexpr,
               DIM_A: tl.constexpr, DIM_B: tl.constexpr, BLOCK: tl.constexpr, BLOCK_DA: tl.constexpr,
               BLOCK_DB: tl.constexpr):
    """Rows [start, start + BLOCK) of head h of two [L, H, D] tensors by pointers (K and V, or Q and dO); MASKED:
    rows past the sequence's end load as zeros, and so contribute nothing (False only for full blocks, every row
    of which is in the sequence)."""
    offs = start + tl.arange(0, BLOCK)
    offs_da = tl.arange(0, BLOCK_DA)
    offs_db = tl.arange(0, BLOCK_DB)
    rows = seq_start + offs
    a_ptrs = A + rows[:, None] * stride_am + h * stride_ah + offs_da[None, :]
    b_ptrs = B + rows[:, None] * stride_bm + h * stride_bh + offs_db[None, :]
    if MASKED:
        a = tl.load(a_ptrs, mask=(offs[:, None] < n) & (offs_da[None, :] < DIM_A), other=0.0)
        b = tl.load(b_ptrs, mask=(offs[:, None] < n) & (offs_db[None, :] < DIM_B), other=0.0)
    else:
        a = tl.load(a_ptrs, mask=offs_da[None, :] < DIM_A, other=0.0)
        b = tl.load(b_ptrs, mask=offs_db[None, :] < DIM_B, other=0.0)
    return a, b


def _load_pair_tma(A_DESC, B_DESC, start, seq_start, h, stride_ah, stride_bh):
    """The same rows by bulk tensor copies (Hopper TMA) through descriptors over the [L, H*D] views
    (`_descriptors`). A box past the sequence's end would read the next sequence's rows, not zeros: only for
    blocks the caller knows lie inside the sequence."""
    row = (seq_start + start).to(tl.int32)
    return A_DESC.load([row, h * stride_ah]), B_DESC.load([row, h * stride_bh])


def _fwd_block(acc, q, K, V, K_DESC, V_DESC, start_n, seq_start, h, n, n_ctx, hist_end, n_hist, win_start, offs_m,
               id_m, stride_km, stride_kh, stride_vm, stride_vh, half_alpha, max_attn_len,
               MASKED: tl.constexpr, HAS_WINDOW: tl.constexpr, FAST: tl.constexpr, PRECISION: tl.constexpr,
               USE_TMA: tl.constexpr, DIM_QK: tl.constexpr, DIM_V: tl.constexpr, BLOCK_N: tl.constexpr,
               BLOCK_DQK: tl.constexpr, BLOCK_DV: tl.constexpr):
    """acc += (mask * SiLU(alpha * q k^T)) v for one key block (the caller applies 1/S once); MASKED=False only
    for full blocks. id_m: the rows' query ids (`_query_ids`)."""
    offs_n = start_n + tl.arange(0, BLOCK_N)
    if MASKED:
        k, v = _load_pair(K, V, start_n, seq_start, h, n, stride_km, stride_kh, stride_vm, stride_vh, True, DIM_QK,
                        DIM_V, BLOCK_N, BLOCK_DQK, BLOCK_DV)
    elif USE_TMA:  # a full block lies below the diagonal, inside the sequence: one bulk tensor copy each
        k, v = _load_pair_tma(K_DESC, V_DESC, start_n, seq_start, h, stride_kh, stride_vh)
    else:
        k, v = _load_pair(K, V, start_n, seq_start, h, n, stride_km, stride_kh, stride_vm, stride_vh, False, DIM_QK,
                        DIM_V, BLOCK_N, BLOCK_DQK, BLOCK_DV)
    hs = tl.dot(q, tl.trans(k), input_precision=PRECISION) * half_alpha  # [BLOCK_M, BLOCK_N] fp32, s / 2
    p = hs * _one_plus_tanh(hs, FAST)  # SiLU(s)
    if MASKED:
        # Keys past the end load as zeros, so only the docs/design.md §6 mask is needed, not a length mask.
        id_n = _ids(offs_n, n_ctx, hist_end, n_hist)
        keep = _keep(offs_m[:, None], id_m[:, None], offs_n[None, :], id_n[None, :], win_start, max_attn_len,
                     HAS_WINDOW)
        p = tl.where(keep, p, 0.0)
    return acc + tl.dot(p.to(v.dtype), v, input_precision=PRECISION)


def _dq_block(dq, q, do, K, V, K_DESC, V_DESC, start_n, seq_start, h, n, n_ctx, hist_end, n_hist, win_start,
              offs_m, id_m, stride_km, stride_kh, stride_vm, stride_vh, half_alpha, max_attn_len,
              MASKED: tl.constexpr, HAS_WINDOW: tl.constexpr, FAST: tl.constexpr, PRECISION: tl.constexpr,
              USE_TMA: tl.constexpr, DIM_QK: tl.constexpr, DIM_V: tl.constexpr, BLOCK_N: tl.constexpr,
              BLOCK_DQK: tl.constexpr, BLOCK_DV: tl.constexpr):
    """dq += dS k for one key block, dS = mask * dP * 2 SiLU'(s), dP = dO v^T (the caller applies alpha / (2S))."""
    offs_n = start_n + tl.arange(0, BLOCK_N)
    if MASKED:
        k, v = _load_pair(K, V, start_n, seq_start, h, n, stride_km, stride_kh, stride_vm, stride_vh, True, DIM_QK,
                        DIM_V, BLOCK_N, BLOCK_DQK, BLOCK_DV)
    elif USE_TMA:  # full blocks lie below the diagonal, inside the sequence
        k, v = _load_pair_tma(K_DESC, V_DESC, start_n, seq_start, h, stride_kh, stride_vh)
    else:
        k, v = _load_pair(K, V, start_n, seq_start, h, n, stride_km, stride_kh, stride_vm, stride_vh, False, DIM_QK,
                        DIM_V, BLOCK_N, BLOCK_DQK, BLOCK_DV)
    hs = tl.dot(q, tl.trans(k), input_precision=PRECISION) * half_alpha
    a = _one_plus_tanh(hs, FAST)
    dp = tl.dot(do, tl.trans(v), input_precision=PRECISION)
    ds = dp * a * (1.0 + hs * (2.0 - a))
    if MASKED:
        id_n = _ids(offs_n, n_ctx, hist_end, n_hist)
        keep = _keep(offs_m[:, None], id_m[:, None], offs_n[None, :], id_n[None, :], win_start, max_attn_len,
                     HAS_WINDOW)
        ds = tl.where(keep, ds, 0.0)
    return dq + tl.dot(ds.to(k.dtype), k, input_precision=PRECISION)


def _dkdv_block(dk, dv, k, v, Q, DO, Q_DESC, DO_DESC, start_m, seq_start, h, n, n_ctx, hist_end, n_hist, win_start,
                offs_n, id_n, stride_qm, stride_qh, stride_dom, stride_doh, half_alpha, max_attn_len,
                MASKED: tl.constexpr, HAS_WINDOW: tl.constexpr, QUERY_TIME: tl.constexpr, FAST: tl.constexpr,
                PRECISION: tl.constexpr, USE_TMA: tl.constexpr,
                DIM_QK: tl.constexpr, DIM_V: tl.constexpr, BLOCK_M: tl.constexpr,
                BLOCK_DQK: tl.constexpr, BLOCK_DV: tl.constexpr):
    """dv += P^T dO and dk += dS^T q for one query block, computed key-major ([BLOCK_N, BLOCK_M]); P and dS as in
    `_fwd_block` / `_dq_block`, without their constant factors (the caller applies them). USE_TMA: the block lies
    inside the sequence (the caller checks), so Q and dO come as bulk tensor copies."""
    offs_m = start_m + tl.arange(0, BLOCK_M)
    if USE_TMA:
        q, do = _load_pair_tma(Q_DESC, DO_DESC, start_m, seq_start, h, stride_qh, stride_doh)
    else:  # queries past the end load as zeros and so contribute nothing
        q, do = _load_pair(Q, DO, start_m, seq_start, h, n, stride_qm, stride_qh, stride_dom, stride_doh, True, DIM_QK,
                           DIM_V, BLOCK_M, BLOCK_DQK, BLOCK_DV)
    hs_t = tl.dot(k, tl.trans(q), input_precision=PRECISION) * half_alpha
    a_t = _one_plus_tanh(hs_t, FAST)
    p_t = hs_t * a_t
    dp_t = tl.dot(v, tl.trans(do), input_precision=PRECISION)
    ds_t = dp_t * a_t * (1.0 + hs_t * (2.0 - a_t))
    if MASKED:
        id_m = _query_ids(offs_m, n_ctx, hist_end, n_hist, win_start, QUERY_TIME)
        keep_t = _keep(offs_m[None, :], id_m[None, :], offs_n[:, None], id_n[:, None], win_start, max_attn_len,
                       HAS_WINDOW)
        p_t = tl.where(keep_t, p_t, 0.0)
        ds_t = tl.where(keep_t, ds_t, 0.0)
    dv = dv + tl.dot(p_t.to(do.dtype), do, input_precision=PRECISION)
    dk = dk + tl.dot(ds_t.to(q.dtype), q, input_precision=PRECISION)
    return dk, dv


# ----------------------------------------------------------------------------------------------- forward


def _hstu_attn_fwd_kernel(
    Q, K, V, OUT, SEQ_OFFSETS, NUM_TARGETS, K_DESC, V_DESC,
    stride_qm, stride_qh, stride_km, stride_kh, stride_vm, stride_vh,
    alpha, inv_scale, contextual_len, max_attn_len, num_heads, dim_qk, dim_v, len_bucket,
    HAS_TARGETS: tl.constexpr, HAS_WINDOW: tl.constexpr, QUERY_TIME: tl.constexpr, FAST: tl.constexpr,
    PRECISION: tl.constexpr, USE_TMA: tl.constexpr,
    DIM_QK: tl.constexpr, DIM_V: tl.constexpr, BLOCK_DQK: tl.constexpr, BLOCK_DV: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):
    # Last query blocks do the most work under the causal mask: launch them first.
    pid_m = tl.num_programs(1) - 1 - tl.program_id(1)
    h, seq_start, n, n_ctx, hist_end, n_hist, win_start = _sequence(SEQ_OFFSETS, NUM_TARGETS, tl.program_id(0),
                                                                    num_heads, contextual_len, HAS_TARGETS,
                                                                    QUERY_TIME)
    m0 = pid_m * BLOCK_M
    if m0 < n:
        offs_m = m0 + tl.arange(0, BLOCK_M)
        id_m = _query_ids(offs_m, n_ctx, hist_end, n_hist, win_start, QUERY_TIME)
        offs_dqk = tl.arange(0, BLOCK_DQK)
        offs_dv = tl.arange(0, BLOCK_DV)
        rows = seq_start + offs_m
        q = tl.load(Q + rows[:, None] * stride_qm + h * stride_qh + offs_dqk[None, :],
                    mask=(offs_m[:, None] < n) & (offs_dqk[None, :] < DIM_QK), other=0.0)
        acc = tl.zeros([BLOCK_M, BLOCK_DV], dtype=tl.float32)
        half_alpha = alpha * 0.5
        lo, full_hi, hi = _key_range(m0, n, n_ctx, hist_end, n_hist, win_start, max_attn_len, HAS_WINDOW,
                                     QUERY_TIME, BLOCK_M, BLOCK_N)
        for start_n in range(lo, full_hi, BLOCK_N):
            acc = _fwd_block(acc, q, K, V, K_DESC, V_DESC, start_n, seq_start, h, n, n_ctx, hist_end, n_hist,
                             win_start, offs_m, id_m, stride_km, stride_kh, stride_vm, stride_vh, half_alpha,
                             max_attn_len, False, HAS_WINDOW, FAST, PRECISION, USE_TMA, DIM_QK, DIM_V, BLOCK_N,
                             BLOCK_DQK, BLOCK_DV)
        for start_n in range(full_hi, hi, BLOCK_N):
            acc = _fwd_block(acc, q, K, V, K_DESC, V_DESC, start_n, seq_start, h, n, n_ctx, hist_end, n_hist,
                             win_start, offs_m, id_m, stride_km, stride_kh, stride_vm, stride_vh, half_alpha,
                             max_attn_len, True, HAS_WINDOW, FAST, PRECISION, USE_TMA, DIM_QK, DIM_V, BLOCK_N,
                             BLOCK_DQK, BLOCK_DV)
        acc = acc * inv_scale
        # OUT is allocated here: contiguous [L, H, Dv].
        tl.store(OUT + rows[:, None] * (num_heads * DIM_V) + h * DIM_V + offs_dv[None, :],
                 acc.to(OUT.dtype.element_ty), mask=(offs_m[:, None] < n) & (offs_dv[None, :] < DIM_V))


# ----------------------------------------------------------------------------------------------- backward


def _dkdv_program(
    pid_n, Q, K, V, DO, DK, DV, SEQ_OFFSETS, NUM_TARGETS, Q_DESC, DO_DESC,
    stride_qm, stride_qh, stride_km, stride_kh, stride_vm, stride_vh,
    alpha, inv_scale, contextual_len, max_attn_len, num_heads,
    HAS_TARGETS: tl.constexpr, HAS_WINDOW: tl.constexpr, QUERY_TIME: tl.constexpr, FAST: tl.constexpr,
    PRECISION: tl.constexpr, USE_TMA: tl.constexpr,
    DIM_QK: tl.constexpr, DIM_V: tl.constexpr, BLOCK_DQK: tl.constexpr, BLOCK_DV: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):
    """dK, dV of key block ``pid_n`` of one (sequence, head); DO, DK, DV contiguous [L, H, D]."""
    h, seq_start, n, n_ctx, hist_end, n_hist, win_start = _sequence(SEQ_OFFSETS, NUM_TARGETS, tl.program_id(0),
                                                                    num_heads, contextual_len, HAS_TARGETS,
                                                                    QUERY_TIME)
    stride_dom, stride_doh = num_heads * DIM_V, DIM_V
    n0 = pid_n * BLOCK_N
    if n0 < n:
        offs_n = n0 + tl.arange(0, BLOCK_N)
        id_n = _ids(offs_n, n_ctx, hist_end, n_hist)
        offs_dqk = tl.arange(0, BLOCK_DQK)
        offs_dv = tl.arange(0, BLOCK_DV)
        k, v = _load_pair(K, V, n0, seq_start, h, n, stride_km, stride_kh, stride_vm, stride_vh, True, DIM_QK, DIM_V,
                          BLOCK_N, BLOCK_DQK, BLOCK_DV)
        dk = tl.zeros([BLOCK_N, BLOCK_DQK], dtype=tl.float32)
        dv = tl.zeros([BLOCK_N, BLOCK_DV], dtype=tl.float32)
        half_alpha = alpha * 0.5
        # Queries attending these keys: contextual rows (if any key lies before the window start: id <= U, or
        # U - W under query time), then rows from n0 on.
        ctx_blocks = 0
        if n0 < win_start:
            ctx_blocks = tl.cdiv(n_ctx, BLOCK_M)
        main_lo = tl.maximum((n0 // BLOCK_M) * BLOCK_M, ctx_blocks * BLOCK_M)
        hi = n
        if HAS_WINDOW:
            # History queries see keys at most max_attn_len ids back; candidates only if U+1 is that close.
            last_col = tl.minimum(n0 + BLOCK_N, hist_end) - 1
            last_id = tl.where(last_col < n_ctx, 0, last_col - n_ctx + 1)
            if n_hist + 1 - last_id > max_attn_len:
                hi = tl.minimum(tl.maximum(n_ctx + last_id + max_attn_len, n0 + BLOCK_N), n)
                if QUERY_TIME:
                    # Candidate c has query id U - W + c + 1: those with c < last_id + max_attn_len - (U - W)
                    # may be close enough.
                    n_close = last_id + max_attn_len - (win_start - n_ctx)
                    if n_close > 0:
                        hi = tl.minimum(tl.maximum(hi, hist_end + n_close), n)
        if n0 >= hist_end:
            hi = tl.minimum(n0 + BLOCK_N, n)  # candidate keys are attended only by themselves
        # Queries after the key block attend all of it when no key is a candidate and there is no window.
        full_lo = hi
        if (not HAS_WINDOW) & (n0 + BLOCK_N <= hist_end):
            full_lo = tl.minimum(tl.maximum(tl.cdiv(n0 + BLOCK_N, BLOCK_M) * BLOCK_M, main_lo), hi)
        # [full_lo, full_hi) is attended in full; under query time a key block holding window tokens is not
        # attended in full by the candidates before them, so the query blocks from the one holding the first
        # candidate on go through the mask.
        full_hi = hi
        if QUERY_TIME:
            if n0 + BLOCK_N > win_start:
                full_hi = tl.maximum(tl.minimum((hist_end // BLOCK_M) * BLOCK_M, hi), full_lo)
        num_masked = tl.maximum(tl.cdiv(full_lo - main_lo, BLOCK_M), 0)
        for t in range(0, ctx_blocks + num_masked):
            start_m = tl.where(t < ctx_blocks, t * BLOCK_M, main_lo + (t - ctx_blocks) * BLOCK_M)
            dk, dv = _dkdv_block(dk, dv, k, v, Q, DO, Q_DESC, DO_DESC, start_m, seq_start, h, n, n_ctx, hist_end,
                                 n_hist, win_start, offs_n, id_n, stride_qm, stride_qh, stride_dom, stride_doh,
                                 half_alpha, max_attn_len, True, HAS_WINDOW, QUERY_TIME, FAST, PRECISION, False,
                                 DIM_QK, DIM_V, BLOCK_M, BLOCK_DQK, BLOCK_DV)
        # Full query blocks that end inside the sequence may come as bulk tensor copies (USE_TMA); the last one,
        # which may reach past the end (the next sequence's rows), always through masked pointer loads.
        inside_hi = full_lo
        if USE_TMA:
            inside_hi = tl.minimum(full_lo + tl.maximum((n - full_lo) // BLOCK_M, 0) * BLOCK_M, full_hi)
            for start_m in range(full_lo, inside_hi, BLOCK_M):
                dk, dv = _dkdv_block(dk, dv, k, v, Q, DO, Q_DESC, DO_DESC, start_m, seq_start, h, n, n_ctx,
                                     hist_end, n_hist, win_start, offs_n, id_n, stride_qm, stride_qh, stride_dom,
                                     stride_doh, half_alpha, max_attn_len, False, HAS_WINDOW, QUERY_TIME, FAST,
                                     PRECISION, True, DIM_QK, DIM_V, BLOCK_M, BLOCK_DQK, BLOCK_DV)
        for start_m in range(inside_hi, full_hi, BLOCK_M):
            dk, dv = _dkdv_block(dk, dv, k, v, Q, DO, Q_DESC, DO_DESC, start_m, seq_start, h, n, n_ctx, hist_end,
                                 n_hist, win_start, offs_n, id_n, stride_qm, stride_qh, stride_dom, stride_doh,
                                 half_alpha, max_attn_len, False, HAS_WINDOW, QUERY_TIME, FAST, PRECISION, False,
                                 DIM_QK, DIM_V, BLOCK_M, BLOCK_DQK, BLOCK_DV)
        if QUERY_TIME:
            for start_m in range(full_hi, hi, BLOCK_M):
                dk, dv = _dkdv_block(dk, dv, k, v, Q, DO, Q_DESC, DO_DESC, start_m, seq_start, h, n, n_ctx,
                                     hist_end, n_hist, win_start, offs_n, id_n, stride_qm, stride_qh, stride_dom,
                                     stride_doh, half_alpha, max_attn_len, True, HAS_WINDOW, QUERY_TIME, FAST,
                                     PRECISION, False, DIM_QK, DIM_V, BLOCK_M, BLOCK_DQK, BLOCK_DV)
        dk = dk * (half_alpha * inv_scale)
        dv = dv * inv_scale
        cols = seq_start + offs_n
        tl.store(DK + cols[:, None] * (num_heads * DIM_QK) + h * DIM_QK + offs_dqk[None, :],
                 dk.to(DK.dtype.element_ty), mask=(offs_n[:, None] < n) & (offs_dqk[None, :] < DIM_QK))
        tl.store(DV + cols[:, None] * (num_heads * DIM_V) + h * DIM_V + offs_dv[None, :],
                 dv.to(DV.dtype.element_ty), mask=(offs_n[:, None] < n) & (offs_dv[None, :] < DIM_V))


def _dq_program(
    pid_m, Q, K, V, DO, DQ, SEQ_OFFSETS, NUM_TARGETS, K_DESC, V_DESC,
    stride_qm, stride_qh, stride_km, stride_kh, stride_vm, stride_vh,
    alpha, inv_scale, contextual_len, max_attn_len, num_heads,
    HAS_TARGETS: tl.constexpr, HAS_WINDOW: tl.constexpr, QUERY_TIME: tl.constexpr, FAST: tl.constexpr,
    PRECISION: tl.constexpr, USE_TMA: tl.constexpr,
    DIM_QK: tl.constexpr, DIM_V: tl.constexpr, BLOCK_DQK: tl.constexpr, BLOCK_DV: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):
    """dQ of query block ``pid_m`` of one (sequence, head); DO, DQ contiguous [L, H, D]."""
    h, seq_start, n, n_ctx, hist_end, n_hist, win_start = _sequence(SEQ_OFFSETS, NUM_TARGETS, tl.program_id(0),
                                                                    num_heads, contextual_len, HAS_TARGETS,
                                                                    QUERY_TIME)
    stride_dom, stride_doh = num_heads * DIM_V, DIM_V
    m0 = pid_m * BLOCK_M
    if m0 < n:
        offs_m = m0 + tl.arange(0, BLOCK_M)
        id_m = _query_ids(offs_m, n_ctx, hist_end, n_hist, win_start, QUERY_TIME)
        offs_dqk = tl.arange(0, BLOCK_DQK)
        offs_dv = tl.arange(0, BLOCK_DV)
        rows = seq_start + offs_m
        q = tl.load(Q + rows[:, None] * stride_qm + h * stride_qh + offs_dqk[None, :],
                    mask=(offs_m[:, None] < n) & (offs_dqk[None, :] < DIM_QK), other=0.0)
        do = tl.load(DO + rows[:, None] * stride_dom + h * stride_doh + offs_dv[None, :],
                     mask=(offs_m[:, None] < n) & (offs_dv[None, :] < DIM_V), other=0.0)
        dq = tl.zeros([BLOCK_M, BLOCK_DQK], dtype=tl.float32)
        half_alpha = alpha * 0.5
        lo, full_hi, hi = _key_range(m0, n, n_ctx, hist_end, n_hist, win_start, max_attn_len, HAS_WINDOW,
                                     QUERY_TIME, BLOCK_M, BLOCK_N)
        for start_n in range(lo, full_hi, BLOCK_N):
            dq = _dq_block(dq, q, do, K, V, K_DESC, V_DESC, start_n, seq_start, h, n, n_ctx, hist_end, n_hist,
                           win_start, offs_m, id_m, stride_km, stride_kh, stride_vm, stride_vh, half_alpha,
                           max_attn_len, False, HAS_WINDOW, FAST, PRECISION, USE_TMA, DIM_QK, DIM_V, BLOCK_N,
                           BLOCK_DQK, BLOCK_DV)
        for start_n in range(full_hi, hi, BLOCK_N):
            dq = _dq_block(dq, q, do, K, V, K_DESC, V_DESC, start_n, seq_start, h, n, n_ctx, hist_end, n_hist,
                           win_start, offs_m, id_m, stride_km, stride_kh, stride_vm, stride_vh, half_alpha,
                           max_attn_len, True, HAS_WINDOW, FAST, PRECISION, USE_TMA, DIM_QK, DIM_V, BLOCK_N,
                           BLOCK_DQK, BLOCK_DV)
        dq = dq * (half_alpha * inv_scale)
        tl.store(DQ + rows[:, None] * (num_heads * DIM_QK) + h * DIM_QK + offs_dqk[None, :],
                 dq.to(DQ.dtype.element_ty), mask=(offs_m[:, None] < n) & (offs_dqk[None, :] < DIM_QK))


def _hstu_attn_bwd_kernel(
    Q, K, V, DO, DQ, DK, DV, SEQ_OFFSETS, NUM_TARGETS, Q_DESC, K_DESC, V_DESC, DO_DESC,
    stride_qm, stride_qh, stride_km, stride_kh, stride_vm, stride_vh,
    alpha, inv_scale, contextual_len, max_attn_len, num_heads, dim_qk, dim_v, len_bucket,
    ROLE: tl.constexpr,
    HAS_TARGETS: tl.constexpr, HAS_WINDOW: tl.constexpr, QUERY_TIME: tl.constexpr, FAST: tl.constexpr,
    PRECISION: tl.constexpr, USE_TMA: tl.constexpr,
    DIM_QK: tl.constexpr, DIM_V: tl.constexpr, BLOCK_DQK: tl.constexpr, BLOCK_DV: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):
    """ROLE "dkdv": program (bh, j) writes dK, dV of key block j; "dq": dQ of query block (last - j). First key
    blocks are attended by the most queries and last query blocks attend the most keys: each launches its heaviest
    blocks first. (One launch holding both roles measured 11% slower at N=8192 and no faster at N=1024:
    benchmarks/results/NOTES.md.)"""
    if ROLE == "dkdv":
        _dkdv_program(tl.program_id(1), Q, K, V, DO, DK, DV, SEQ_OFFSETS, NUM_TARGETS, Q_DESC, DO_DESC, stride_qm,
                      stride_qh, stride_km, stride_kh, stride_vm, stride_vh, alpha, inv_scale, contextual_len,
                      max_attn_len, num_heads, HAS_TARGETS, HAS_WINDOW, QUERY_TIME, FAST, PRECISION, USE_TMA, DIM_QK,
                      DIM_V, BLOCK_DQK, BLOCK_DV, BLOCK_M, BLOCK_N)
    else:
        _dq_program(tl.num_programs(1) - 1 - tl.program_id(1), Q, K, V, DO, DQ, SEQ_OFFSETS, NUM_TARGETS, K_DESC,
                    V_DESC, stride_qm, stride_qh, stride_km, stride_kh, stride_vm, stride_vh, alpha, inv_scale,
                    contextual_len, max_attn_len, num_heads, HAS_TARGETS, HAS_WINDOW, QUERY_TIME, FAST, PRECISION,
                    USE_TMA, DIM_QK, DIM_V, BLOCK_DQK, BLOCK_DV, BLOCK_M, BLOCK_N)


# ----------------------------------------------------------------------------------------------- configs

_KEY = ["len_bucket", "dim_qk", "dim_v", "HAS_TARGETS", "HAS_WINDOW", "QUERY_TIME", "USE_TMA"]

# The descriptor arguments and the tile dimension their boxes span in rows: queries (and dO) BLOCK_M, keys BLOCK_N.
_DESCRIPTOR_ROWS = {"Q_DESC": "BLOCK_M", "DO_DESC": "BLOCK_M", "K_DESC": "BLOCK_N", "V_DESC": "BLOCK_N"}


def _fit_descriptors(nargs: dict) -> None:
    """Give each tensor descriptor among ``nargs`` (kernel arguments by name, the configuration's too) the box of
    the configuration's tiles; a Config pre_hook, and called by ``_launch`` for the launches autotune does not make."""
    for name, rows in _DESCRIPTOR_ROWS.items():
        desc = nargs.get(name)
        if desc is not None:
            desc.block_shape = [nargs[rows], desc.block_shape[1]]


def _configs(pairs: list[tuple[int, int, int, int]]) -> list[triton.Config]:
    return [triton.Config({"BLOCK_M": m, "BLOCK_N": n}, num_warps=w, num_stages=s, pre_hook=_fit_descriptors)
            for m, n, w, s in pairs]


# 256-row forward tiles: two warpgroups of 128 rows each, whose tanh and tensor-core work overlap (NOTES.md,
# "Forward tiles with two warpgroups").
FORWARD_CONFIGS = _FWD_CONFIGS = _configs([(256, 64, 8, 3), (128, 64, 8, 3), (128, 64, 8, 2), (128, 64, 4, 3),
                                           (64, 64, 4, 3), (128, 128, 8, 2), (64, 32, 4, 2)])
BACKWARD_CONFIGS = _BWD_CONFIGS = _configs([(64, 64, 4, 2), (64, 128, 8, 2), (128, 64, 8, 2), (32, 64, 4, 2), (64, 32, 4, 2)])

_HELPERS = (_ids, _query_ids, _keep, _sequence, _key_range, _one_plus_tanh, _load_pair, _load_pair_tma, _fwd_block,
            _dq_block, _dkdv_block)
_FWD = LazyKernel(_hstu_attn_fwd_kernel, _FWD_CONFIGS, _KEY, _HELPERS)
_BWD = LazyKernel(_hstu_attn_bwd_kernel, _BWD_CONFIGS, _KEY + ["ROLE"], _HELPERS + (_dkdv_program, _dq_program))

AUTOTUNE = True  # False: always launch the fixed config (also what the interpreter uses)
# Bulk tensor copies (TMA) for the K/V tiles of the forward's and the dQ program's full key blocks and the Q/dO tiles
# of the dK/dV program's full query blocks. None: where the GPU has them (compute capability >= 9, Triton with
# tensor descriptors) and the layout allows (`_tma_fits`); True: wherever the layout allows (the interpreter too:
# tests); False: never. Measured on an H200 (benchmarks/results/NOTES.md, "K/V tiles through TMA"): the backward
# gains 5-8% at N=4096-8192, the forward at its 256-row tiles loses 5-35%, so only the backward uses them.
TMA_FORWARD: bool | None = False
TMA_BACKWARD: bool | None = None
_FORCED: dict[str, triton.Config] = {}  # role ("forward" / "backward") -> config, set by launch_config
# The configuration autotune picked, per kernel and autotune key: later launches skip the autotuner's per-call work
# (host time is what bounds N=1024; benchmarks/results/NOTES.md, v8 and v9).
_TUNED: dict[tuple, dict] = {}
# The binary the picked configuration compiled to, per tuned key, device and argument specialisation: later launches
# call it directly, skipping the jitted kernel's argument binding and cache lookup too.
_COMPILED: dict[tuple, tuple] = {}


@contextlib.contextmanager
def launch_config(*, forward: triton.Config | None = None, backward: triton.Config | None = None):
    """Inside, launch the forward / both backward kernels with these configurations instead of autotuning.

    Autotuning picks by speed alone, so a fast but wrong configuration could win: the GPU tests run every entry
    of ``FORWARD_CONFIGS`` and ``BACKWARD_CONFIGS`` through this against the twin. Not thread-safe (tests only).
    """
    saved = dict(_FORCED)
    _FORCED.update({role: cfg for role, cfg in (("forward", forward), ("backward", backward)) if cfg is not None})
    try:
        yield
    finally:
        _FORCED.clear()
        _FORCED.update(saved)


def _fixed_config(dim: int) -> dict[str, int]:
    """Always-correct launch parameters; smaller tiles for wide heads keep registers in bounds."""
    block = 64 if dim <= 128 else 32
    return {"BLOCK_M": block, "BLOCK_N": block, "num_warps": 4, "num_stages": 2}


# ----------------------------------------------------------------------------------------------- launchers


def _common_args(q, v, max_seq_len, alpha, inv_scale, num_targets, contextual_len, max_attn_len, query_time):
    """Scalar arguments shared by the kernels, and their constexpr flags."""
    heads, dim_qk, dim_v = q.shape[1], q.shape[2], v.shape[2]
    scalars = (alpha, inv_scale, contextual_len, max_attn_len, heads, dim_qk, dim_v,
               triton.next_power_of_2(max(max_seq_len, 16)))  # len_bucket: last, _launch keys on it
    flags = {
        "HAS_TARGETS": num_targets is not None,
        "HAS_WINDOW": max_attn_len > 0,
        "QUERY_TIME": query_time,
        "PRECISION": "ieee" if q.dtype == torch.float32 else "tf32",
        # tanh.approx is PTX: only compiled CUDA code, and only where bf16/fp16 rounding hides its error.
        "FAST": q.is_cuda and q.dtype != torch.float32,
        "DIM_QK": dim_qk,
        "DIM_V": dim_v,
        "BLOCK_DQK": max(triton.next_power_of_2(dim_qk), 16),
        "BLOCK_DV": max(triton.next_power_of_2(dim_v), 16),
    }
    return scalars, flags


def _specialisation(args) -> tuple:
    """What Triton specialises a compiled kernel on, for the arguments these kernels take: a tensor's dtype and
    16-byte alignment; an int's divisibility by 16, being 1, and whether it fits 32 bits; a tensor descriptor's
    dtype and box width (its box rows follow the configuration, which the tuned key fixes). A compiled kernel is
    reused only for launches with an equal tuple (``_launch``)."""
    return tuple((a.dtype, a.data_ptr() % 16 == 0) if isinstance(a, torch.Tensor) else
                 (a == 1, a % 16 == 0, -(2 ** 31) <= a < 2 ** 31) if type(a) is int else
                 (a.base.dtype, a.block_shape[-1]) if TensorDescriptor is not None and
                 isinstance(a, TensorDescriptor) else type(a) for a in args)


def _tma_fits(t: torch.Tensor) -> bool:
    """Whether a [L, H, D] tensor can be read through a descriptor over its [L, (H - 1) * stride_h + D] view: a
    power-of-two D >= 16 (the box spans the whole head, no padding columns of the next head), 16-byte aligned
    base and row stride, and heads that do not overlap."""
    rows, heads, dim = t.shape
    size = t.element_size()
    return (rows > 0 and dim >= 16 and dim & (dim - 1) == 0 and t.stride(1) >= dim and t.data_ptr() % 16 == 0
            and (t.stride(0) * size) % 16 == 0 and t.stride(0) >= (heads - 1) * t.stride(1) + dim)


_CAPABILITY: dict[torch.device, tuple[int, int]] = {}


def _use_tma(setting: bool | None, *tensors: torch.Tensor) -> bool:
    """The USE_TMA flag of a launch reading ``tensors`` (``TMA_FORWARD`` / ``TMA_BACKWARD`` as ``setting``)."""
    if setting is False or TensorDescriptor is None:
        return False
    if setting is None:
        device = tensors[0].device
        if device.type != "cuda":
            return False
        if device not in _CAPABILITY:
            _CAPABILITY[device] = torch.cuda.get_device_capability(device)
        if _CAPABILITY[device][0] < 9:
            return False
    return all(_tma_fits(t) for t in tensors)


def _descriptors(use: bool, **tensors: torch.Tensor) -> dict:
    """Descriptor arguments by name (None each when ``use`` is False): 2-D over [L, (H - 1) * stride_h + D], so head
    h's tile of rows r.. is the box at (r, h * stride_h); the box's rows are set per configuration
    (`_fit_descriptors`)."""
    if not use:
        return dict.fromkeys(tensors)
    return {name: TensorDescriptor(t, [t.shape[0], (t.shape[1] - 1) * t.stride(1) + t.shape[2]], [t.stride(0), 1],
                                   [16, t.shape[2]]) for name, t in tensors.items()}


def _launch(kernel: LazyKernel, batch_heads: int, blocks, dim: int, args, flags, descs: dict):
    """Launch ``kernel`` on a (batch_heads, blocks(config)) grid: a forced, the tuned or the fixed configuration.
    ``descs``: the tensor descriptors among ``args`` by name (their boxes follow the configuration)."""
    forced = _FORCED.get("forward" if kernel is _FWD else "backward")
    tuned = AUTOTUNE and forced is None and args[0].is_cuda
    if tuned:
        # triton.autotune's key: _KEY (the length bucket, the last scalar argument; dims and flags) and the dtype.
        key = (kernel, args[-1], args[0].dtype, *flags.values())
        cfg = _TUNED.get(key)
        if cfg is not None:
            binary = (key, args[0].get_device(), _specialisation(args))
            known = _COMPILED.get(binary)
            if known is not None:  # the compiled kernel itself: none of the jitted kernel's per-call work either
                compiled, constexprs = known
                if flags["USE_TMA"]:
                    _fit_descriptors({**descs, **cfg})
                compiled[(batch_heads, blocks(cfg), 1)](*args, *constexprs)
                return
    fn = kernel.get(tuned)
    if forced is not None:
        cfg = forced.all_kwargs()
    elif not tuned:
        cfg = _fixed_config(dim)
    elif cfg is None:  # the first launch for this key: autotune picks (the configurations' pre_hook fits descs)
        fn[lambda meta: (batch_heads, blocks(meta))](*args, **flags)
        _TUNED[key] = fn.best_config.all_kwargs()
        return
    if flags["USE_TMA"]:
        _fit_descriptors({**descs, **cfg})
    if tuned:  # the picked configuration through the jitted kernel under the autotuner, which returns its binary
        jitted = fn.fn
        compiled = jitted[(batch_heads, blocks(cfg))](*args, **flags, **cfg)
        named = {**flags, **cfg}
        _COMPILED[binary] = (compiled, tuple(named[name] for name in jitted.arg_names[len(args):]))
        return
    fn[(batch_heads, blocks(cfg))](*args, **flags, **cfg)


def _forward(q, k, v, seq_offsets, num_targets, max_seq_len, scalars, flags) -> torch.Tensor:
    total, heads, _ = q.shape
    out = torch.empty((total, heads, v.shape[2]), dtype=q.dtype, device=q.device)
    targets = num_targets if num_targets is not None else seq_offsets  # unread when HAS_TARGETS is False
    flags = {**flags, "USE_TMA": _use_tma(TMA_FORWARD, k, v)}
    descs = _descriptors(flags["USE_TMA"], K_DESC=k, V_DESC=v)
    args = (q, k, v, out, seq_offsets, targets, descs["K_DESC"], descs["V_DESC"], q.stride(0), q.stride(1),
            k.stride(0), k.stride(1), v.stride(0), v.stride(1), *scalars)
    _launch(_FWD, (seq_offsets.numel() - 1) * heads, lambda cfg: triton.cdiv(max_seq_len, cfg["BLOCK_M"]),
            max(q.shape[2], v.shape[2]), args, flags, descs)
    return out


def _backward(dout, q, k, v, seq_offsets, num_targets, max_seq_len, scalars, flags):
    """dQ, dK, dV (contiguous) for a contiguous ``dout``."""
    dq, dk, dv = (torch.empty(t.shape, dtype=t.dtype, device=t.device) for t in (q, k, v))
    targets = num_targets if num_targets is not None else seq_offsets
    flags = {**flags, "USE_TMA": _use_tma(TMA_BACKWARD, q, k, v, dout)}
    descs = _descriptors(flags["USE_TMA"], Q_DESC=q, K_DESC=k, V_DESC=v, DO_DESC=dout)
    args = (q, k, v, dout, dq, dk, dv, seq_offsets, targets, *descs.values(), q.stride(0), q.stride(1),
            k.stride(0), k.stride(1), v.stride(0), v.stride(1), *scalars)
    batch_heads, dim = (seq_offsets.numel() - 1) * q.shape[1], max(q.shape[2], v.shape[2])
    _launch(_BWD, batch_heads, lambda cfg: triton.cdiv(max_seq_len, cfg["BLOCK_N"]), dim, args,
            {**flags, "ROLE": "dkdv"}, descs)
    _launch(_BWD, batch_heads, lambda cfg: triton.cdiv(max_seq_len, cfg["BLOCK_M"]), dim, args,
            {**flags, "ROLE": "dq"}, descs)
    return dq, dk, dv


class _HstuAttentionFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, seq_offsets, num_targets, max_seq_len, scalars, flags):
        out = _forward(q, k, v, seq_offsets, num_targets, max_seq_len, scalars, flags)
        ctx.save_for_backward(q, k, v, seq_offsets, num_targets)
        ctx.max_seq_len, ctx.scalars, ctx.flags = max_seq_len, scalars, flags
        return out

    @staticmethod
    def backward(ctx, dout):
        q, k, v, seq_offsets, num_targets = ctx.saved_tensors
        dout = dout.contiguous()  # the kernels read dO as contiguous [L, H, Dv]
        dq, dk, dv = _backward(dout, q, k, v, seq_offsets, num_targets, ctx.max_seq_len, ctx.scalars, ctx.flags)
        return dq, dk, dv, None, None, None, None, None


# ----------------------------------------------------------------------------------------------- public


def _validate(q, k, v, seq_offsets, max_seq_len, num_targets, contextual_len, max_attn_len, query_time) -> None:
    if q.dim() != 3 or k.shape != q.shape or v.dim() != 3 or v.shape[:2] != q.shape[:2]:
        raise ValueError(f"hstu_attention: expected q, k [L, H, Dqk] and v [L, H, Dv], got q {tuple(q.shape)}, "
                         f"k {tuple(k.shape)}, v {tuple(v.shape)}")
    if not (q.dtype == k.dtype == v.dtype) or q.dtype not in (torch.float32, torch.bfloat16, torch.float16):
        raise ValueError(f"hstu_attention: q, k, v must share one of float32/bfloat16/float16, got "
                         f"{q.dtype}, {k.dtype}, {v.dtype}")
    if any(t.stride(-1) != 1 for t in (q, k, v)):
        raise ValueError("hstu_attention: q, k, v need a contiguous last dimension (stride 1)")
    if seq_offsets.dtype != torch.int64 or seq_offsets.dim() != 1 or seq_offsets.numel() < 1:
        raise ValueError(f"hstu_attention: seq_offsets must be int64 [B+1], got {seq_offsets.dtype} "
                         f"{tuple(seq_offsets.shape)}")
    if query_time and num_targets is None:
        raise ValueError("hstu_attention: query_time=True needs num_targets (the candidates per sequence), got None")
    devices = {t.device for t in (q, k, v, seq_offsets)}
    if num_targets is not None:
        if num_targets.shape != (seq_offsets.numel() - 1,) or num_targets.dtype not in (torch.int32, torch.int64):
            raise ValueError(f"hstu_attention: num_targets must be int [B={seq_offsets.numel() - 1}], got "
                             f"{num_targets.dtype} {tuple(num_targets.shape)}")
        devices.add(num_targets.device)
    if len(devices) != 1:
        raise ValueError(f"hstu_attention: all tensors must be on one device, got {sorted(map(str, devices))}")
    if max_seq_len < 1 or contextual_len < 0 or max_attn_len < 0:
        raise ValueError(f"hstu_attention: need max_seq_len >= 1, contextual_len >= 0, max_attn_len >= 0; got "
                         f"{max_seq_len}, {contextual_len}, {max_attn_len}")


def check_sequence_lengths(seq_offsets: torch.Tensor, max_seq_len: int) -> None:
    """Raises ValueError when a sequence of ``seq_offsets`` is longer than ``max_seq_len``: the Triton grid
    covers only ``max_seq_len`` rows, so longer rows would be left unwritten. One host sync; skipped while
    tracing (torch.compile / torch.export), where the caller's shapes are symbolic."""
    if seq_offsets.numel() < 2 or torch.compiler.is_compiling() or torch.compiler.is_exporting():
        return
    lengths = seq_offsets[1:] - seq_offsets[:-1]
    longest = int(lengths.max())
    if longest > max_seq_len:
        raise ValueError(f"hstu_attention: sequence {int(lengths.argmax())} has {longest} tokens, more than "
                         f"max_seq_len={max_seq_len}")


def hstu_attention(
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
    check_lengths: bool = True,
    backend: str = "triton",
) -> torch.Tensor:
    """HSTU attention over jagged sequences (docs/design.md §6), differentiable in q, k, v.

    Args:
        q, k: [L, H, Dqk]; v: [L, H, Dv] (same dtype, last dim contiguous).
        seq_offsets: int64 [B+1], seq_offsets[-1] == L.
        max_seq_len: bound on every sequence length (the Triton grid covers this many rows).
        alpha: score scale, usually 1/sqrt(Dqk).
        scaling_seqlen: S in SiLU(.)/S; defaults to max_seq_len.
        num_targets: int [B] candidates at the end of each sequence, or None.
        contextual_len: K contextual tokens at the start of every sequence.
        max_attn_len: if > 0, a query sees keys at most this many ids back.
        query_time: the query-time mask of the module docstring (the last min(T, U) history tokens are the
            candidates' own events, seen only by later candidates); needs num_targets.
        check_lengths: raise when a sequence is longer than max_seq_len (``check_sequence_lengths``, one host
            sync); a caller that checked its batch once (the model, per forward) passes False.
        backend: "triton" (CUDA, or CPU with TRITON_INTERPRET=1) or "pytorch" (dense-mask twin).

    Returns:
        [L, H, Dv] in the dtype of q.
    """
    query_time = bool(query_time)
    _validate(q, k, v, seq_offsets, max_seq_len, num_targets, contextual_len, max_attn_len, query_time)
    if check_lengths:
        check_sequence_lengths(seq_offsets, max_seq_len)
    if not check_backend(backend, "hstu_attention", q.device):
        return hstu_attention_ref(q, k, v, seq_offsets, max_seq_len, alpha=alpha, scaling_seqlen=scaling_seqlen,
                                  num_targets=num_targets, contextual_len=contextual_len,
                                  max_attn_len=max_attn_len, query_time=query_time)
    if q.shape[0] == 0 or seq_offsets.numel() < 2:
        return (q.sum() * 0 + k.sum() * 0 + v.sum() * 0) + v.new_zeros(v.shape)  # keeps the graph for backward
    inv_scale = 1.0 / float(scaling_seqlen or max_seq_len)
    scalars, flags = _common_args(q, v, int(max_seq_len), float(alpha), inv_scale, num_targets,
                                  int(contextual_len), int(max_attn_len), query_time)
    return _HstuAttentionFunction.apply(q, k, v, seq_offsets, num_targets, int(max_seq_len), scalars, flags)
