"""Training-step throughput of DlrmHSTU: candidates/s, tokens/s and peak memory, kernel TRITON vs PYTORCH.

Runs the trainer's real step (``components.training.train_loop.Trainer``: fused row-wise Adagrad for the tables,
AdamW for the dense part, clipping, bf16 autocast on GPU) on synthetic batches with realistic lengths
(history lengths log-normal, capped by ``max_uih_len``), without TorchRec sharding, data loading or MLflow.
Default shapes are the spec's GPU config (configs/dlrm_hstu_kuairand.config: d=512, 3 layers, max_seq_len 8000).

    python benchmarks/bench_train.py                                   # GPU, both kernels
    python benchmarks/bench_train.py --device cpu --kernels PYTORCH --tiny --steps 3 --warmup 1   # smoke check

Appends one row per kernel to benchmarks/results/train.json (``--no-save`` to skip) and prints a table.
``--profile F`` also records three more steps with torch.profiler and writes where their time goes (GPU time per
kernel, host time per operator, and the GPU's busy share of the wall clock) to F, to tell a step bound by the
GPU from one bound by the host that issues its work.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import RESULTS, append_rows, row  # noqa: E402

from components.config import PipelineConfig, load_config  # noqa: E402
from components.training.train_loop import Trainer, TrainState  # noqa: E402
from hstu_model.batch import HstuBatch, collate  # noqa: E402
from hstu_model.config import sequence_budget  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, default=REPO / "configs" / "dlrm_hstu_kuairand.config")
    p.add_argument("--device", default="cuda")
    p.add_argument("--kernels", nargs="+", default=["TRITON", "PYTORCH"], choices=["TRITON", "PYTORCH"])
    p.add_argument("--token-budget", type=int, default=None, help="tokens per batch (default: the config's)")
    p.add_argument("--uih-mean", type=float, default=1500.0, help="mean history length (log-normal)")
    p.add_argument("--max-uih", type=int, default=None, help="history cap (default: data_config.max_uih_len)")
    p.add_argument("--max-candidates", type=int, default=None)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--precision", choices=["AUTO", "FP32", "BF16"], default="AUTO")
    p.add_argument("--tiny", action="store_true", help="d=32, 1 layer, max_seq_len 256, small tables (CPU smoke)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-save", action="store_true")
    p.add_argument("--profile", type=Path, default=None, help="write a torch.profiler summary of 3 steps here")
    return p.parse_args(argv)


def _shrink(config: PipelineConfig) -> PipelineConfig:
    """A tiny variant of the config for a CPU smoke check (same structure, small dims and tables)."""
    m = config.model
    stu = dataclasses.replace(m.hstu.stu, embedding_dim=32, hidden_dim=16, attention_dim=16, num_heads=2)
    pre = dataclasses.replace(m.hstu.preprocessor, action_mlp_hidden_dim=32, content_mlp_hidden_dim=32)
    hstu = dataclasses.replace(m.hstu, stu=stu, attn_num_layers=1, preprocessor=pre)
    tables = tuple(dataclasses.replace(t, num_embeddings=min(t.num_embeddings, 1000), embedding_dim=16)
                   for t in m.embedding_tables)
    tower = dataclasses.replace(m.tower, hidden_units=(32,))
    model = dataclasses.replace(m, hstu=hstu, max_seq_len=256, embedding_tables=tables, tower=tower)
    data = dataclasses.replace(config.data, max_uih_len=180, max_candidates=32)
    train = dataclasses.replace(config.train, batch_token_budget=1024)
    return config.replace(model=model, data=data, train=train)


def synthetic_batches(config: PipelineConfig, n: int, budget: int, uih_mean: float, max_uih: int,
                      max_cand: int, rng: np.random.Generator) -> list[HstuBatch]:
    """``n`` batches of synthetic samples packed to ``budget`` tokens (history lengths log-normal)."""
    g, k = config.model.feature_groups, len(config.model.feature_groups.contextual)
    # Ids drawn as table rows: the timing does not depend on which rows, and collate needs no vocabulary.
    rows_of = {f: t.num_embeddings for t in config.model.embedding_tables for f in t.feature_names}
    cap = min(max_uih, sequence_budget(config.model) - max_cand)
    batches = []
    t0 = 1_700_000_000
    for _ in range(n):
        rows, used = [], 0
        while True:
            u = int(min(cap, max(1, rng.lognormal(np.log(uih_mean), 0.8))))
            c = int(rng.integers(1, max_cand + 1))
            if used + k + u + c > budget and rows:
                break
            used += k + u + c
            row_ = {f: int(rng.integers(0, rows_of[f])) for f in g.contextual}
            row_.update({g.uih[0]: rng.integers(0, rows_of[g.uih[0]], u), g.uih_action[0]: rng.integers(0, 256, u),
                         g.uih_watchtime[0]: rng.random(u) * 60,
                         g.uih_timestamp[0]: np.sort(t0 - rng.integers(0, 86400 * 30, u)),
                         g.candidate[0]: rng.integers(0, rows_of[g.candidate[0]], c),
                         g.candidate_timestamp[0]: np.sort(t0 + rng.integers(0, 86400, c)),
                         "item_action_weight": rng.integers(0, 256, c), "item_watch_time": rng.random(c) * 60,
                         "user_id": int(rng.integers(0, rows_of["user_id"]))})
            rows.append(row_)
        batches.append(collate(rows, config.model))
    return batches


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _profile(trainer, state, batches: list[HstuBatch], device: torch.device, kernel: str, out: Path) -> None:
    """Appends to ``out`` the profile of ``batches`` (one step each): top operators by GPU and by host time."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    _sync(device)
    t = time.perf_counter()
    with profile(activities=activities) as prof:
        for b in batches:
            trainer.step(b, state)
        _sync(device)
    wall_ms = (time.perf_counter() - t) * 1000
    events = prof.key_averages()
    gpu_ms = sum(e.self_device_time_total for e in events) / 1000
    with out.open("a") as f:
        f.write(f"# kernel {kernel}: {len(batches)} steps, wall {wall_ms:.1f} ms (profiled), "
                f"GPU busy {gpu_ms:.1f} ms ({100 * gpu_ms / wall_ms:.0f}%)\n")
        if device.type == "cuda":
            f.write(events.table(sort_by="self_device_time_total", row_limit=25) + "\n")
        f.write(events.table(sort_by="self_cpu_time_total", row_limit=25) + "\n")


def bench_kernel(config: PipelineConfig, kernel: str, batches: list[HstuBatch], args) -> dict:
    config = config.replace(model=dataclasses.replace(config.model, kernel=kernel),
                            train=dataclasses.replace(config.train, precision=args.precision, allow_kernel_fallback=False,
                                                      warmup_steps=0))
    device = torch.device(args.device)
    trainer = Trainer(config, device, rank=0, world=1, digest="bench")
    state = TrainState()
    batches = [b.to(device) for b in batches]
    for b in batches[:args.warmup]:
        trainer.step(b, state)
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times, cands, tokens = [], 0, 0
    for i in range(args.steps):
        b = batches[args.warmup + i]
        t = time.perf_counter()
        trainer.step(b, state)
        _sync(device)
        times.append((time.perf_counter() - t) * 1000)
        cands += b.num_candidates
        tokens += b.num_tokens
    total_s = sum(times) / 1000
    if args.profile:
        _profile(trainer, state, batches[args.warmup:args.warmup + 3], device, kernel, args.profile)
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None
    m = config.model
    shape = {"D": m.hstu.stu.embedding_dim, "H": m.hstu.stu.num_heads, "layers": m.hstu.attn_num_layers,
             "max_seq_len": m.max_seq_len, "budget": config.train.batch_token_budget, "uih_mean": args.uih_mean,
             "tokens_per_batch": tokens / args.steps, "precision": args.precision}
    return row("train_step", kernel.lower(), "fwd+bwd+opt", shape, tuple(np.percentile(times, [20, 50, 80])),
               None, peak, candidates_per_s=cands / total_s, tokens_per_s=tokens / total_s,
               final_loss=float(state.interval["loss"]) / max(state.interval["steps"], 1))


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    config = load_config(args.config)
    if args.tiny:
        config = _shrink(config)
    if args.token_budget:
        config = config.replace(train=dataclasses.replace(config.train, batch_token_budget=args.token_budget))
    rng = np.random.default_rng(args.seed)
    budget = max(config.train.batch_token_budget, config.model.max_seq_len)
    batches = synthetic_batches(config, args.warmup + args.steps, budget, args.uih_mean,
                                args.max_uih or config.data.max_uih_len,
                                args.max_candidates or config.data.max_candidates, rng)
    rows = [bench_kernel(config, kernel, batches, args) for kernel in args.kernels]
    print(f"{'kernel':<9}{'p50 ms':>10}{'cand/s':>12}{'tokens/s':>12}{'peak MiB':>10}{'tok/batch':>11}")
    for r in rows:
        peak = "-" if r["peak_mib"] is None else f"{r['peak_mib']:.0f}"
        print(f"{r['backend']:<9}{r['p50_ms']:>10.2f}{r['candidates_per_s']:>12.0f}{r['tokens_per_s']:>12.0f}"
              f"{peak:>10}{r['shape']['tokens_per_batch']:>11.0f}")
    if not args.no_save:
        append_rows(RESULTS / "train.json", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
