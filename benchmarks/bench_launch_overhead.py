"""Host time against GPU time of hstu_attention: where a small problem's time goes.

At N=1024 the three kernels need ~0.34 ms of GPU time per forward+backward, yet a call took ~1 ms: the host could
not queue the work as fast as the GPU ran it (benchmarks/results/NOTES.md). For each launch layout this script
measures, on the reference batch (B jagged sequences, lengths uniform in [N/2, N], bf16, causal):

- host_us: wall time per call while only queuing (CUDA_LAUNCH_BLOCKING off, one sync after 200 calls, so the
  queue never fills at these sizes);
- graph_p50_ms: the same call captured in a CUDA graph and replayed (no host work: what the kernels alone take);
- p20/p50/p80_ms: do_bench of the plain call, as bench_hstu_attention.py times it (about max(host, GPU)).

Layouts: "binary" calls the kernel that the picked configuration compiled to, directly (the default); "direct"
launches the picked configuration through the jitted kernel (v8); "autotuner" goes through triton.autotune on every
call. --breakdown prints where the host time of one call goes.

    python benchmarks/bench_launch_overhead.py --n 1024 8192
"""

from __future__ import annotations

import argparse
import importlib
import time
from pathlib import Path

import torch
from bench_common import RESULTS, append_rows, row, time_ms
from bench_hstu_attention import _inputs

from kernels import hstu_attention

attention = importlib.import_module("kernels.hstu_attention")  # the module (the package exports the function)


def _call(q, k, v, offsets, n, dim, mode, grad, forget=None, mask=None):
    """``forget``: the launch cache cleared before every call ("_TUNED": each launch goes through triton.autotune's
    cache lookup; "_COMPILED": through the jitted kernel's argument binding and cache lookup)."""
    def forward():
        if forget:
            getattr(attention, forget).clear()
        return hstu_attention(q, k, v, offsets, n, alpha=dim ** -0.5, check_lengths=False, **(mask or {}))

    if mode == "fwd":
        return forward
    return lambda: torch.autograd.grad(forward(), (q, k, v), grad)


def _host_us(call, calls=200) -> float:
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(calls):
        call()
    host = time.perf_counter() - start
    torch.cuda.synchronize()
    return host / calls * 1e6


def _graph_ms(call) -> float:
    """p50 ms of replaying one captured call: GPU time with no host work in between."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            call()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        call()
    return time_ms(graph.replay)[1]


def _breakdown(n: int, args) -> None:
    """Host microseconds per piece of one forward+backward, and a cProfile of the backward's own Python."""
    import cProfile
    import pstats

    q, k, v, offsets, _ = _inputs(args.batch, n, args.heads, args.dim, torch.bfloat16, seed=n)
    grad = torch.randn_like(q)
    alpha = args.dim ** -0.5
    out = hstu_attention(q, k, v, offsets, n, alpha=alpha, check_lengths=False)
    torch.autograd.grad(out, (q, k, v), grad)
    scalars, flags = attention._common_args(q, v, n, alpha, 1.0 / n, None, 0, 0, False)
    inside = []
    backward = attention._HstuAttentionFunction.backward

    def timed_backward(ctx, dout):
        start = time.perf_counter()
        result = backward(ctx, dout)
        inside.append(time.perf_counter() - start)
        return result

    pieces = {
        "forward, no grad": lambda: hstu_attention(q.detach(), k.detach(), v.detach(), offsets, n, alpha=alpha,
                                                   check_lengths=False),
        "forward, grad": lambda: hstu_attention(q, k, v, offsets, n, alpha=alpha, check_lengths=False),
        "_backward called directly": lambda: attention._backward(grad, q, k, v, offsets, None, n, scalars, flags),
        "forward + autograd.grad": lambda: torch.autograd.grad(
            hstu_attention(q, k, v, offsets, n, alpha=alpha, check_lengths=False), (q, k, v), grad),
        "torch mul+sum + autograd.grad": lambda: torch.autograd.grad((q * 2.0).sum(), (q,)),
    }
    for name, call in pieces.items():
        print(f"N={n} {name:32s} host {_host_us(call):7.1f} us", flush=True)
    attention._HstuAttentionFunction.backward = staticmethod(timed_backward)
    _host_us(pieces["forward + autograd.grad"])
    attention._HstuAttentionFunction.backward = staticmethod(backward)
    print(f"N={n} time inside backward()          {sum(inside) / len(inside) * 1e6:7.1f} us", flush=True)
    profile = cProfile.Profile()
    profile.enable()
    _host_us(pieces["_backward called directly"])
    profile.disable()
    pstats.Stats(profile).sort_stats("tottime").print_stats(15)


def _masks(args) -> list[dict]:
    """Window-start vs query-time mask, same inputs and tiles: what the mask costs on the GPU, host time aside."""
    attention.AUTOTUNE = False  # the same (fixed) tiles for both masks, and no autotune compiles
    rows = []
    for n in args.n:
        q, k, v, offsets, lengths = _inputs(args.batch, n, args.heads, args.dim, torch.bfloat16, seed=n)
        grad = torch.randn_like(q)
        targets = torch.full((args.batch,), args.masks, dtype=torch.int64, device="cuda")
        shape = {"B": args.batch, "N": n, "H": args.heads, "D": args.dim, "L": int(lengths.sum()), "dtype": "bf16"}
        for mode in ("fwd", "fwd+bwd"):
            for query_time in (False, True):
                call = _call(q, k, v, offsets, n, args.dim, mode, grad, None,
                             {"num_targets": targets, "query_time": query_time})
                call()
                graph = _graph_ms(call)
                rows.append(row("hstu_attention_mask", "query_time" if query_time else "window_start", mode, shape,
                                None, None, None, graph_p50_ms=graph, num_targets=args.masks, note=args.note))
                print(f"N={n} {mode:8s} query_time={query_time!s:5s} graph {graph:7.3f} ms", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[1024, 8192])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--breakdown", action="store_true", help="only the host-time breakdown, then exit")
    parser.add_argument("--masks", type=int, default=0, metavar="T",
                        help="instead: the window-start and the query-time mask with T candidates per sequence, "
                             "GPU time by graph replay, at the fixed launch configuration (no autotune)")
    parser.add_argument("--note", default="")
    parser.add_argument("--out", type=Path, default=RESULTS / "launch_overhead.json")
    args = parser.parse_args()
    if args.breakdown:
        for n in args.n:
            _breakdown(n, args)
        return
    if args.masks:
        append_rows(args.out, _masks(args))
        return
    layouts = [("binary", None), ("direct", "_COMPILED"), ("autotuner", "_TUNED")]
    rows = []
    for n in args.n:
        q, k, v, offsets, lengths = _inputs(args.batch, n, args.heads, args.dim, torch.bfloat16, seed=n)
        grad = torch.randn_like(q)
        shape = {"B": args.batch, "N": n, "H": args.heads, "D": args.dim, "L": int(lengths.sum()), "dtype": "bf16"}
        for mode in ("fwd", "fwd+bwd"):
            for name, forget in layouts:
                call = _call(q, k, v, offsets, n, args.dim, mode, grad, forget)
                call()  # compile + autotune
                host = _host_us(call)
                graph = _graph_ms(call) if forget != "_TUNED" else None
                times = time_ms(call)
                rows.append(row("hstu_attention_launch", name, mode, shape, times, None, None, host_us=host,
                                graph_p50_ms=graph, note=args.note))
                print(f"N={n} {mode:8s} {name:28s} host {host:7.1f} us  graph {graph or float('nan'):7.3f} ms  "
                      f"eager p50 {times[1]:7.3f} ms", flush=True)
    append_rows(args.out, rows)


if __name__ == "__main__":
    main()
