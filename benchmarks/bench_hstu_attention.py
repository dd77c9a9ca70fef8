"""Benchmark hstu_attention (Triton vs the PyTorch twin) on the reference problem of notes/performance.md.

B jagged sequences, lengths uniform in [N/2, N], causal, bf16. FLOPs: forward = H * (Dqk + Dv) * sum(len^2),
backward = 2.5 x forward (nominal: the same count for every mask, so TFLOP/s compare as inverse times). Checks the
Triton output against the twin in fp32 first, then times both.

--num-targets T gives every sequence T candidates (the window-start mask); --query-time also times the query-time
mask (query_time=True, the last min(T, U) history tokens are the candidates' own events) on the same inputs,
after the window-start mask (T defaults to 64 then), so both masks are compared in one run. Rows record
"num_targets" and "query_time".

--compare also times torch's scaled_dot_product_attention with the cuDNN and the flash backends in the same
process: causal softmax attention on the batch padded to [B, H, N, D] (SDPA takes no jagged input), charged the
same jagged FLOPs as ours, so TFLOP/s read as inverse times. Only without candidates (a causal mask both have).

Ours is timed with check_lengths=False, as the model calls it (it checks each batch's lengths once, not per layer):
the check is one host sync per call.

    python benchmarks/bench_hstu_attention.py --n 1024 2048 4096 8192 --out benchmarks/results/hstu_attention.json
    python benchmarks/bench_hstu_attention.py --n 1024 2048 4096 8192 --query-time --modes fwd+bwd
    python benchmarks/bench_hstu_attention.py --n 1024 4096 8192 --compare
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from bench_common import RESULTS, append_rows, peak_mib, print_table, row, time_ms

from kernels import hstu_attention
from kernels.hstu_attention_ref import hstu_attention_ref

try:
    from torch.nn.attention import SDPBackend, sdpa_kernel
except ImportError:  # older torch: --compare is unavailable
    SDPBackend = sdpa_kernel = None


def _inputs(batch, n, heads, dim, dtype, seed):
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(n // 2, n + 1, (batch,), generator=gen)
    offsets = torch.cat([torch.zeros(1, dtype=torch.int64), lengths.cumsum(0)]).cuda()
    total = int(lengths.sum())
    q, k, v = (torch.randn(total, heads, dim, device="cuda", dtype=dtype).requires_grad_() for _ in range(3))
    return q, k, v, offsets, lengths


def _mask_kwargs(num_targets, batch, query_time):
    """hstu_attention mask keywords: T candidates per sequence (none when T == 0), query-time mask or not."""
    if num_targets == 0:
        return {}
    return {"num_targets": torch.full((batch,), num_targets, dtype=torch.int64, device="cuda"),
            "query_time": query_time}


def _check(n, heads, dim, num_targets=0, query_time=False):
    """fp32 Triton vs twin on a 4-sequence batch; raises if they disagree."""
    q, k, v, offsets, _ = _inputs(4, min(n, 2048), heads, dim, torch.float32, seed=1)
    mask = _mask_kwargs(num_targets, 4, query_time)
    out = hstu_attention(q, k, v, offsets, n, alpha=dim ** -0.5, **mask)
    ref = hstu_attention_ref(q, k, v, offsets, n, alpha=dim ** -0.5, **mask)
    err = ((out - ref).norm() / ref.norm()).item()
    if not err < 1e-4:
        raise RuntimeError(f"Triton vs twin relative error {err:.2e} at N={n} (query_time={query_time}) "
                           "exceeds 1e-4")
    return err


def _sdpa(backend):
    """torch SDPA on one backend as a drop-in for hstu_attention's signature (q, k, v: [B, H, N, D], padded)."""
    def fn(q, k, v, offsets, n, *, alpha):
        with sdpa_kernel(backend):
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=alpha)
    return fn


def _padded(batch, n, heads, dim):
    q, k, v = (torch.randn(batch, heads, n, dim, device="cuda", dtype=torch.bfloat16).requires_grad_()
               for _ in range(3))
    return q, k, v


def _bench_one(fn, q, k, v, offsets, n, dim, flops_fwd, mode, mask):
    def forward():
        return fn(q, k, v, offsets, n, alpha=dim ** -0.5, **mask)

    if mode == "fwd":
        call = forward
    else:
        grad = torch.randn_like(forward())

        def call():
            torch.autograd.grad(forward(), (q, k, v), grad)
    call()  # compile + autotune
    times = time_ms(call)
    flops = flops_fwd * (1.0 if mode == "fwd" else 3.5)
    return times, flops / (times[1] * 1e-3) / 1e12, peak_mib(call)


def _compare(args, n, shape, flops_fwd) -> list[dict]:
    """SDPA rows (cuDNN, flash) for one N: a fresh padded batch, the causal mask, our FLOP count."""
    rows = []
    q, k, v = _padded(args.batch, n, args.heads, args.dim)
    for name, backend in (("sdpa_cudnn", SDPBackend.CUDNN_ATTENTION), ("sdpa_flash", SDPBackend.FLASH_ATTENTION)):
        for mode in args.modes:
            try:
                times, tflops, peak = _bench_one(_sdpa(backend), q, k, v, None, n, args.dim, flops_fwd, mode, {})
                rows.append(row("hstu_attention", name, mode, shape, times, tflops, peak, note=args.note,
                                num_targets=0, query_time=False, padded_to=n))
            except (RuntimeError, torch.OutOfMemoryError) as exc:  # a backend unavailable for this shape
                rows.append(row("hstu_attention", name, mode, shape, None, None, None, num_targets=0,
                                query_time=False, note=f"failed: {str(exc).splitlines()[0][:120]}"))
            torch.cuda.empty_cache()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[1024, 2048, 4096, 8192])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--ref-max-n", type=int, default=8192, help="skip the twin above this N")
    parser.add_argument("--modes", nargs="+", default=["fwd", "fwd+bwd"])
    parser.add_argument("--num-targets", type=int, default=None,
                        help="candidates per sequence (default: none, or 64 with --query-time)")
    parser.add_argument("--query-time", action="store_true",
                        help="also time the query-time mask (query_time=True) after the window-start mask")
    parser.add_argument("--compare", action="store_true",
                        help="also time torch SDPA (cuDNN, flash) on the same batch padded to N (causal only)")
    parser.add_argument("--note", default="", help="free text stored with each row (the kernel version)")
    parser.add_argument("--out", type=Path, default=RESULTS / "hstu_attention.json")
    args = parser.parse_args()
    num_targets = args.num_targets if args.num_targets is not None else (64 if args.query_time else 0)
    if args.query_time and num_targets < 1:
        parser.error("--query-time needs candidates: --num-targets >= 1")
    query_times = (False, True) if args.query_time else (False,)
    if args.compare and (num_targets or sdpa_kernel is None):
        parser.error("--compare needs torch.nn.attention.sdpa_kernel and no candidates (a plain causal mask)")
    rows = []
    for n in args.n:
        errs = {qt: _check(n, args.heads, args.dim, num_targets, qt) for qt in query_times}
        q, k, v, offsets, lengths = _inputs(args.batch, n, args.heads, args.dim, torch.bfloat16, seed=n)
        flops_fwd = args.heads * 2 * args.dim * float((lengths.double() ** 2).sum())
        shape = {"B": args.batch, "N": n, "H": args.heads, "D": args.dim, "L": int(lengths.sum()), "dtype": "bf16"}
        for backend, fn in (("triton", hstu_attention), ("pytorch", hstu_attention_ref)):
            for mode in args.modes:
                if backend == "pytorch" and n > args.ref_max_n:
                    continue
                for query_time in query_times:
                    mask = _mask_kwargs(num_targets, args.batch, query_time)
                    if backend == "triton":  # no host sync per call: the model checks its batch once
                        mask["check_lengths"] = False
                    extra = {"num_targets": num_targets, "query_time": query_time}
                    try:
                        times, tflops, peak = _bench_one(fn, q, k, v, offsets, n, args.dim, flops_fwd, mode, mask)
                        rows.append(row("hstu_attention", backend, mode, shape, times, tflops, peak,
                                        fp32_rel_err_vs_twin=errs[query_time], note=args.note, **extra))
                    except torch.OutOfMemoryError:
                        rows.append(row("hstu_attention", backend, mode, shape, None, None, None, note="OOM",
                                        **extra))
                    torch.cuda.empty_cache()
        if args.compare:
            rows += _compare(args, n, shape, flops_fwd)
    append_rows(args.out, rows)
    for query_time in query_times:
        print(f"num_targets={num_targets} query_time={query_time}")
        print_table([r for r in rows if r["query_time"] == query_time])


if __name__ == "__main__":
    main()
