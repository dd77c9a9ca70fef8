"""Time hstu_attention at fixed launch configurations (tiles, warps, stages), one at a time.

Autotuning picks among ``kernels.hstu_attention.FORWARD_CONFIGS`` / ``BACKWARD_CONFIGS``; this script measures
configurations outside those lists too, so a list change is decided by numbers. Each configuration is first
checked against the PyTorch twin (a 4-sequence batch; in fp32, or with ``--check-dtype bf16`` in bf16 against the
twin's fp32 on the same rounded inputs, for tiles whose fp32 version does not fit shared memory), then timed on the reference problem (B jagged
sequences, lengths uniform in [N/2, N], causal, bf16): the forward for forward configurations, forward+backward
for backward ones (the forward then runs at ``--backward-forward``, so each backward configuration costs its own
compiles only, not a forward autotune per dtype). A configuration that does not compile or does not fit
(shared memory) is recorded with its error.

    python benchmarks/bench_attention_tiles.py --n 8192 --forward 128,64,8,2 128,128,8,3 --backward 64,64,4,2

--tma-ab ROUNDS times each configuration with the pointer loads and with the TMA loads (``TMA_FORWARD`` /
``TMA_BACKWARD``) in alternating order, ROUNDS times, on the same inputs in one process; forward+backward also
with TMA in the forward only and in the backward only. Each TMA variant's outputs (and gradients) are compared
with the pointer path's on the timed inputs first. Rows go to hstu_attention_tma.json.

    python benchmarks/bench_attention_tiles.py --n 8192 4096 1024 --forward 256,64,8,3 --backward 64,64,4,2 \
        --backward-forward 256,64,8,3 --tma-ab 2
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

import torch
import triton
from bench_common import RESULTS, append_rows, print_table, row, time_ms
from bench_hstu_attention import _bench_one, _inputs

from kernels import hstu_attention
from kernels.hstu_attention import launch_config
from kernels.hstu_attention_ref import hstu_attention_ref


def _config(text: str) -> triton.Config:
    m, n, w, s = (int(x) for x in text.split(","))
    return triton.Config({"BLOCK_M": m, "BLOCK_N": n}, num_warps=w, num_stages=s)


TOLERANCE = {"fp32": 1e-4, "bf16": 2e-2}  # relative error; bf16 rounds every product to 8 bits of mantissa


def _error(n: int, heads: int, dim: int, dtype: str) -> float:
    q, k, v, offsets, _ = _inputs(4, min(n, 1024), heads, dim, torch.float32, seed=1)
    if dtype == "bf16":
        q, k, v = (t.detach().to(torch.bfloat16).requires_grad_() for t in (q, k, v))
    out = hstu_attention(q, k, v, offsets, n, alpha=dim ** -0.5)
    grads = torch.autograd.grad(out, (q, k, v), torch.ones_like(out))
    q32, k32, v32 = (t.detach().float().requires_grad_() for t in (q, k, v))
    ref = hstu_attention_ref(q32, k32, v32, offsets, n, alpha=dim ** -0.5)
    ref_grads = torch.autograd.grad(ref, (q32, k32, v32), torch.ones_like(ref))
    return max(((a.float() - b).norm() / b.norm()).item() for a, b in zip((out, *grads), (ref, *ref_grads)))


def _time(n, args, mode):
    """(p20, p50, p80) ms, TFLOP/s and peak MiB of one call on the reference batch (bench_hstu_attention's)."""
    q, k, v, offsets, lengths = _inputs(args.batch, n, args.heads, args.dim, torch.bfloat16, seed=0)
    flops_fwd = args.heads * 2 * args.dim * float((lengths.double() ** 2).sum())
    return _bench_one(hstu_attention, q, k, v, offsets, n, args.dim, flops_fwd, mode, {})


_VARIANTS = {"fwd": [("pointer", False, False), ("tma", True, False)],
             "fwd+bwd": [("pointer", False, False), ("tma", True, True), ("tma-fwd-only", True, False),
                         ("tma-bwd-only", False, True)]}


def _run_variant(module, variant, call):
    """``call()`` with ``variant`` (name, TMA_FORWARD, TMA_BACKWARD) set, restoring the module's settings."""
    saved = module.TMA_FORWARD, module.TMA_BACKWARD
    module.TMA_FORWARD, module.TMA_BACKWARD = variant[1], variant[2]
    try:
        return call()
    finally:
        module.TMA_FORWARD, module.TMA_BACKWARD = saved


def _tma_ab(args, n, forced, mode, label) -> list[dict]:
    """Pointer vs TMA rows for one N, configuration and mode: the difference to the pointer path's results, then
    ``args.tma_ab`` rounds of timings in alternating order."""
    module = importlib.import_module("kernels.hstu_attention")
    q, k, v, offsets, lengths = _inputs(args.batch, n, args.heads, args.dim, torch.bfloat16, seed=0)
    flops_fwd = args.heads * 2 * args.dim * float((lengths.double() ** 2).sum())
    grad = torch.randn_like(q)
    shape = {"B": args.batch, "N": n, "H": args.heads, "d": args.dim, "dtype": "bf16"}

    def forward():
        return hstu_attention(q, k, v, offsets, n, alpha=args.dim ** -0.5, check_lengths=False)

    def results():
        out = forward()
        return [out] if mode == "fwd" else [out, *torch.autograd.grad(out, (q, k, v), grad)]

    def call():
        if mode == "fwd":
            forward()
        else:
            torch.autograd.grad(forward(), (q, k, v), grad)

    variants, rows = _VARIANTS[mode], []
    with launch_config(**forced):
        want = _run_variant(module, variants[0], results)
        diffs = {}
        for variant in variants[1:]:
            got = _run_variant(module, variant, results)
            diffs[variant[0]] = [((a.float() - b.float()).norm() / b.float().norm()).item() for a, b in zip(got, want)]
        for r in range(args.tma_ab):
            for variant in variants if r % 2 == 0 else variants[::-1]:
                times = _run_variant(module, variant, lambda: time_ms(call, warmup=50, rep=args.rep_ms))
                tflops = flops_fwd * (1.0 if mode == "fwd" else 3.5) / (times[1] * 1e-3) / 1e12
                rows.append(row("hstu_attention_tma", f"{variant[0]} {label}", mode, shape, times, tflops, None,
                                note=args.note, round=r, tma_forward=variant[1], tma_backward=variant[2],
                                rel_diff_vs_pointer=diffs.get(variant[0])))
                append_rows(args.out_tma, rows[-1:])
                print_table(rows[-1:])
    torch.cuda.empty_cache()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[8192])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--forward", nargs="*", default=[], help="BLOCK_M,BLOCK_N,warps,stages per entry")
    parser.add_argument("--backward", nargs="*", default=[], help="BLOCK_M,BLOCK_N,warps,stages per entry")
    parser.add_argument("--backward-forward", default="128,64,8,3",
                        help="the forward's configuration while backward ones are timed (empty: autotune)")
    parser.add_argument("--check-dtype", choices=sorted(TOLERANCE), default="fp32")
    parser.add_argument("--note", default="")
    parser.add_argument("--out", type=Path, default=RESULTS / "hstu_attention_tiles.json")
    parser.add_argument("--tma-ab", type=int, default=0, help="rounds of the pointer-vs-TMA A/B (0: the sweep)")
    parser.add_argument("--rep-ms", type=int, default=400, help="do_bench's repeat time per timing (--tma-ab)")
    parser.add_argument("--out-tma", type=Path, default=RESULTS / "hstu_attention_tma.json")
    args = parser.parse_args()
    if args.tma_ab:
        for n in args.n:
            for text in args.forward:
                _tma_ab(args, n, {"forward": _config(text)}, "fwd", f"forward {text}")
            for text in args.backward:
                _tma_ab(args, n, {"forward": _config(args.backward_forward), "backward": _config(text)}, "fwd+bwd",
                        f"forward {args.backward_forward} backward {text}")
        return
    rows = []
    for role, texts in (("forward", args.forward), ("backward", args.backward)):
        for text in texts:
            cfg, mode = _config(text), "fwd" if role == "forward" else "fwd+bwd"
            forced = {role: cfg}
            if role == "backward" and args.backward_forward:
                forced["forward"] = _config(args.backward_forward)
            with launch_config(**forced):
                for n in args.n:
                    shape = {"B": args.batch, "N": n, "H": args.heads, "d": args.dim, "dtype": "bf16"}
                    try:
                        err = _error(n, args.heads, args.dim, args.check_dtype)
                        ok = err < TOLERANCE[args.check_dtype]
                        times, tflops, peak = _time(n, args, mode) if ok else (None, None, None)
                        note = f"{args.check_dtype} error vs twin {err:.1e}" + ("" if ok else " (too large: not timed)")
                    except Exception as exc:  # does not compile / does not fit this GPU
                        times, tflops, peak, note = None, None, None, f"failed: {str(exc).splitlines()[0][:120]}"
                    rows.append(row("hstu_attention_tiles", f"{role} {text}", mode, shape, times, tflops, peak,
                                    note=f"{args.note} {note}".strip()))
                    append_rows(args.out, rows[-1:])  # row by row: a run cut short keeps what it measured
                    print_table(rows[-1:])
                    torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
