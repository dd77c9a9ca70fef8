"""Benchmark norm_mul (y = u * GroupNorm(o)) and the LayerNorm of layer_norm_uvqk: Triton vs PyTorch, GB/s.

Bytes counted: forward reads o, u and writes y (3 x L x W elements); forward+backward adds reading o, u, dy
and writing do, du (8 in all). Compare with the ~4.3 TB/s device copy of notes/performance.md.

    PYTHONPATH=. python benchmarks/bench_norm_mul.py --rows 196608 --heads 4 --dim-v 128
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from bench_common import RESULTS, append_rows, peak_mib, print_table, row, time_ms

from kernels import norm_mul


def _bench(backend, mode, o, u, weight, bias, heads, group_norm):
    def forward():
        return norm_mul(o, u, weight, bias, num_heads=heads, use_group_norm=group_norm, backend=backend)

    if mode == "fwd":
        call = forward
    else:
        grad = torch.randn_like(o)

        def call():
            torch.autograd.grad(forward(), (o, u), grad)
    call()
    return time_ms(call), peak_mib(call)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=196608)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--dim-v", type=int, default=128)
    parser.add_argument("--out", type=Path, default=RESULTS / "norm_mul.json")
    args = parser.parse_args()
    width = args.heads * args.dim_v
    o, u = (torch.randn(args.rows, width, device="cuda", dtype=torch.bfloat16, requires_grad=True) for _ in "ou")
    weight, bias = (torch.randn(width, device="cuda", dtype=torch.bfloat16, requires_grad=True) for _ in "wb")
    for group_norm in (True, False):
        ref = norm_mul(o, u, weight, bias, num_heads=args.heads, use_group_norm=group_norm, backend="pytorch")
        got = norm_mul(o, u, weight, bias, num_heads=args.heads, use_group_norm=group_norm)
        err = ((got.float() - ref.float()).norm() / ref.float().norm()).item()
        if not err < 2e-2:
            raise RuntimeError(f"norm_mul Triton vs twin bf16 relative error {err:.2e} (group_norm={group_norm})")
    rows = []
    for group_norm in (True, False):
        shape = {"L": args.rows, "H": args.heads, "D": args.dim_v, "dtype": "bf16", "group_norm": group_norm}
        for backend in ("triton", "pytorch"):
            for mode, passes in (("fwd", 3), ("fwd+bwd", 8)):
                times, peak = _bench(backend, mode, o, u, weight, bias, args.heads, group_norm)
                gbs = passes * args.rows * width * 2 / (times[1] * 1e-3) / 1e9
                rows.append(row("norm_mul", backend, mode, shape, times, None, peak, gb_per_s=gbs,
                                note=f"{'group' if group_norm else 'layer'} norm"))
    append_rows(args.out, rows)
    print_table(rows)


if __name__ == "__main__":
    main()
