"""The PyTorch twin of hstu_attention on the CPU, on batches with the lengths of real samples.

On the CPU the model's attention is the twin (kernel PYTORCH), and it builds a dense [B, H, N, N] score tensor.
Padding a whole batch to its longest sequence made it do several times the work it needed (a batch of the demo's
samples: mean length ~83, longest 320). This times one forward+backward of the twin as it runs now (each length
group padded on its own) against the batch padded as one (`_padded_attention`), on batches drawn from the
lengths and candidate counts of a window's samples, with the query-time mask and 6 contextual tokens as in
`configs/demo.config`.

    python benchmarks/bench_twin_cpu.py --samples hstu_work/samples/dt=2022-04-14
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
from bench_common import RESULTS, append_rows, row

from kernels.hstu_attention_ref import _padded_attention, hstu_attention_ref


def _lengths(samples: Path, contextual: int) -> tuple[np.ndarray, np.ndarray]:
    """(tokens, candidates) per sample of a window (the history list at query time includes the window's events)."""
    table = pq.read_table(samples, columns=["video_id", "item_video_id"]).to_pandas()
    candidates = table["item_video_id"].map(len).to_numpy()
    return contextual + table["video_id"].map(len).to_numpy() + candidates, candidates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=Path, required=True, help="one window's sample folder (dt=...)")
    parser.add_argument("--batch", type=int, default=100, help="sequences per batch (~8k tokens at the demo's)")
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--contextual", type=int, default=6)
    parser.add_argument("--max-seq-len", type=int, default=320)
    parser.add_argument("--reps", type=int, default=7, help="batches timed per layout (the first is dropped)")
    parser.add_argument("--out", type=Path, default=RESULTS / "twin_cpu.json")
    args = parser.parse_args()
    tokens, candidates = _lengths(args.samples, args.contextual)
    mask = {"contextual_len": args.contextual, "query_time": True}
    layouts = {
        "grouped": lambda q, k, v, offsets, targets: hstu_attention_ref(
            q, k, v, offsets, args.max_seq_len, alpha=args.dim ** -0.5, num_targets=targets, **mask),
        "one_padded_batch": lambda q, k, v, offsets, targets: _padded_attention(
            q, k, v, offsets, targets, args.max_seq_len, args.dim ** -0.5, None, args.contextual, 0, True),
    }
    rows = []
    for name, attention in layouts.items():
        rng, seconds = np.random.default_rng(0), []  # the same batches for both layouts
        for _ in range(args.reps):
            pick = rng.choice(len(tokens), size=args.batch)
            lengths = torch.tensor(tokens[pick])
            offsets = torch.cat([torch.zeros(1, dtype=torch.int64), lengths.cumsum(0)])
            q, k, v = (torch.randn(int(lengths.sum()), args.heads, args.dim, requires_grad=True) for _ in range(3))
            start = time.perf_counter()
            attention(q, k, v, offsets, torch.tensor(candidates[pick])).sum().backward()
            seconds.append(time.perf_counter() - start)
        times = tuple(float(np.percentile(seconds[1:], p)) * 1e3 for p in (20, 50, 80))
        shape = {"B": args.batch, "H": args.heads, "D": args.dim, "N": args.max_seq_len, "dtype": "fp32",
                 "mean_len": round(float(tokens.mean()), 1), "max_len": int(tokens.max())}
        rows.append(row("hstu_attention_twin", name, "fwd+bwd", shape, times, None, None,
                        threads=torch.get_num_threads(), samples=str(args.samples)))
        print(f"{name:18s} forward+backward p50 {times[1]:8.1f} ms", flush=True)
    print(f"speed-up {rows[1]['p50_ms'] / rows[0]['p50_ms']:.1f}x")
    append_rows(args.out, rows)


if __name__ == "__main__":
    main()
