"""Why does the model learn what it learns? Per-epoch learning curves of model variants on built samples.

Each variant is the config with a few fields changed (an ablation, a learning rate, a loss weight) or the
batches changed on the way in (history removed, contextual ids removed). Every variant trains with the
trainer's real step (``components.training.train_loop.Trainer``) on the training windows and, after each epoch,
records per task the AUC and log loss on the evaluation window and on the last training window, so the
curves show under- and over-fitting. Variants run in parallel processes (``--jobs``).

    python benchmarks/bench_quality_diagnose.py --config configs/kuairand_explicit.config \
        --work-dir /tmp/q/real --window 2022-04-18 --variants base no_stu context_only --epochs 6

Appends one row per variant and epoch to ``benchmarks/results/quality_diagnose.json`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing as mp
import platform
import sys
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import torch
from google.protobuf import text_format

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_common import RESULTS  # noqa: E402

from components.config import PipelineConfig, apply_overrides, load_config, parse_config  # noqa: E402
from components.data.id_vocab import known_id_rows  # noqa: E402
from components.data.windows import sample_files  # noqa: E402
from components.proto import pipeline_pb2  # noqa: E402
from components.training.evaluate import score_window  # noqa: E402
from components.training.loader import LoaderPosition, StreamConfig, make_loader  # noqa: E402
from components.training.train_loop import Trainer, TrainState  # noqa: E402
from hstu_model.batch import HstuBatch  # noqa: E402
from hstu_model.metrics import auc  # noqa: E402
from kernels.jagged import segment_index  # noqa: E402


def _edit(config: PipelineConfig, change: Callable[[pipeline_pb2.PipelineConfig], None]) -> PipelineConfig:
    msg = pipeline_pb2.PipelineConfig()
    text_format.Parse(config.text, msg)
    change(msg)
    return parse_config(text_format.MessageToString(msg), f"{config.source} + variant")


def _no_history(batch: HstuBatch) -> HstuBatch:
    """The batch with every history removed (contextual tokens and candidates only)."""
    empty = batch.uih_timestamp[:0]
    return dataclasses.replace(batch, uih_ids={f: v[:0] for f, v in batch.uih_ids.items()},
                               uih_action=batch.uih_action[:0], uih_watchtime=batch.uih_watchtime[:0],
                               uih_timestamp=empty, uih_lengths=torch.zeros_like(batch.uih_lengths))


def _no_contextual(batch: HstuBatch) -> HstuBatch:
    """The batch with every contextual id replaced by row 0 (the user's identity and features hidden)."""
    return dataclasses.replace(batch, contextual={f: torch.zeros_like(v) for f, v in batch.contextual.items()})


def _planted_comment(batch: HstuBatch) -> HstuBatch:
    """Comment labels replaced by "the user commented in the history": a signal only the history carries."""
    comment = 8
    sample = torch.repeat_interleave(torch.arange(batch.batch_size), batch.uih_lengths)
    commented = torch.zeros(batch.batch_size, dtype=torch.int64).index_add_(
        0, sample, ((batch.uih_action & comment) != 0).long()) > 0  # [B]
    per_candidate = torch.repeat_interleave(commented, batch.candidate_lengths)  # [C]
    labels = (batch.labels & ~comment) | torch.where(per_candidate, comment, 0)
    return dataclasses.replace(batch, labels=labels)


def _last_events(keep: int) -> Callable[[HstuBatch], HstuBatch]:
    """Each sample's history cut to its last ``keep`` events (with query-time history the window's own events
    stay: they are the last ones): every window then sees histories of one length distribution."""
    def transform(batch: HstuBatch) -> HstuBatch:
        sample, index = segment_index(batch.uih_lengths, batch.uih_action.numel())
        kept = index >= (batch.uih_lengths - keep)[sample]
        return dataclasses.replace(batch, uih_ids={f: v[kept] for f, v in batch.uih_ids.items()},
                                   uih_action=batch.uih_action[kept], uih_watchtime=batch.uih_watchtime[kept],
                                   uih_timestamp=batch.uih_timestamp[kept],
                                   uih_lengths=batch.uih_lengths.clamp(max=keep))
    return transform


def _hstu(msg):
    return msg.model_config.dlrm_hstu.hstu


def _set(path: str, value) -> Callable[[pipeline_pb2.PipelineConfig], None]:
    def change(msg):
        *parents, name = path.split(".")
        node = msg
        for p in parents:
            node = getattr(node, p)
        setattr(node, name, value)
    return change


def _task_weights(weights: dict[str, float]) -> Callable[[pipeline_pb2.PipelineConfig], None]:
    def change(msg):
        for t in msg.model_config.dlrm_hstu.fusion_mtl_tower.task_configs:
            if t.task_name in weights:
                t.weight = weights[t.task_name]
    return change


def _drop_contextual(feature: str) -> Callable[[pipeline_pb2.PipelineConfig], None]:
    def change(msg):
        for group in msg.model_config.feature_groups:
            if group.group_name == "contextual" and feature in group.feature_names:
                names = [f for f in group.feature_names if f != feature]
                del group.feature_names[:]
                group.feature_names.extend(names)
    return change


def _embedding_dim(feature: str, dim: int) -> Callable[[pipeline_pb2.PipelineConfig], None]:
    def change(msg):
        features = [feature, "item_video_id"] if feature == "video_id" else [feature]
        for name in features:
            fc = next((f for f in msg.feature_configs if f.id_feature.feature_name == name), None)
            if fc is None:
                fc = msg.feature_configs.add()
                fc.id_feature.feature_name = name
            fc.id_feature.embedding_dim = dim
    return change


def variant(name: str) -> tuple[list[Callable], Callable[[HstuBatch], HstuBatch] | None]:
    """(config edits, batch transform) of a variant name such as ``base``, ``sparse_lr=0.05``, ``layers=0``."""
    key, _, value = name.partition("=")
    table = {
        "base": ([], None),
        "summary": ([lambda m: setattr(m.model_config.dlrm_hstu.fusion_mtl_tower, "history_summary", True)], None),
        "no_summary": ([lambda m: setattr(m.model_config.dlrm_hstu.fusion_mtl_tower, "history_summary", False)], None),
        "id_bias": ([lambda m: setattr(m.model_config.dlrm_hstu.fusion_mtl_tower, "id_bias", True)], None),
        "no_id_bias": ([lambda m: setattr(m.model_config.dlrm_hstu.fusion_mtl_tower, "id_bias", False)], None),
        "no_stu": ([lambda m: setattr(_hstu(m), "attn_num_layers", 0)], None),
        "context_only": ([], _no_history),
        "history_only": ([], _no_contextual),
        "planted_comment": ([], _planted_comment),
        "planted_comment_no_context": ([], lambda b: _no_contextual(_planted_comment(b))),
    }
    if key in table:
        return table[key]
    if key in ("no_summary_wide", "wide_only"):  # handled in run_variant (wide term off; the deep part's logits
        # held at zero, so only the wide terms learn)
        return [], None
    numeric = {
        "sparse_lr": "train_config.sparse_optimizer.lr", "dense_lr": "train_config.dense_optimizer.lr",
        "layers": "model_config.dlrm_hstu.hstu.attn_num_layers", "dropout": "model_config.dlrm_hstu.hstu.input_dropout_ratio",
        "weight_decay": "train_config.dense_optimizer.weight_decay", "budget": "train_config.batch_token_budget",
        "sparse_wd": "train_config.sparse_optimizer.weight_decay", "warmup": "train_config.warmup_steps",
        "stu_dropout": "model_config.dlrm_hstu.hstu.stu.output_dropout_ratio", "seed": "train_config.seed",
        "bias_lr": "train_config.id_bias_lr", "wide_lr": "train_config.summary_wide_lr",
        "init": "model_config.dlrm_hstu.embedding_init_std",
    }
    if key in numeric:
        as_int = key in ("layers", "budget", "warmup", "seed")
        return [_set(numeric[key], int(value) if as_int else float(value))], None
    if key == "tower_dropout":
        return [lambda m: m.model_config.dlrm_hstu.fusion_mtl_tower.mlp.dropout_ratio.append(float(value))], None
    if key == "history":  # the last N history events only
        return [], _last_events(int(value))
    if key == "user_id_dropout":  # while training the user's id reads the unseen row with this probability
        def change(m, rate=float(value)):
            m.model_config.dlrm_hstu.contextual_id_dropout.add(feature_name="user_id", rate=rate)
        return [change], None
    if key == "no_user_id":  # the user's id leaves the contextual tokens (its features stay)
        return [_drop_contextual("user_id")], None
    if key in ("video_dim", "user_dim"):
        feature = "video_id" if key == "video_dim" else "user_id"
        return [_embedding_dim(feature, int(value))], None
    if key == "rare_weight":  # the rare tasks' loss weight (all but click and long_view)
        return [lambda m: _task_weights({t.task_name: float(value) for t in
                                         m.model_config.dlrm_hstu.fusion_mtl_tower.task_configs
                                         if t.task_name not in ("is_click", "long_view")})], None
    raise ValueError(f"unknown variant {name!r}")


def _compose(transforms, batch: HstuBatch) -> HstuBatch:
    for transform in transforms:
        batch = transform(batch)
    return batch


def _scores(model, config: PipelineConfig, window: date, transform) -> tuple[np.ndarray, np.ndarray]:
    if transform is None:
        probs, labels, _, _ = score_window(model, config, window)
        return probs, labels
    import components.training.evaluate as evaluate

    original = evaluate.make_loader

    def transformed(*args, **kwargs):
        for role, batch in original(*args, **kwargs):
            yield role, transform(batch)

    evaluate.make_loader = transformed
    try:
        probs, labels, _, _ = score_window(model, config, window)
    finally:
        evaluate.make_loader = original
    return probs, labels


def _log_loss(p: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())


class _Zero(torch.nn.Module):
    """The deep head's output times zero (its shape, no gradient to the deep part)."""

    def __init__(self, head: torch.nn.Module):
        super().__init__()
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x).detach() * 0.0


def run_variant(name: str, base: PipelineConfig, window: date, train_windows: list[date], epochs: int,
                device: str) -> list[dict]:
    """Trains one variant; one result row per epoch."""
    torch.set_num_threads(2)
    parts = [variant(part) for part in name.split("+")]  # "a+b": both changes
    edits = [change for part_edits, _ in parts for change in part_edits]
    transforms = [t for _, t in parts if t is not None]
    transform = None if not transforms else (lambda b: _compose(transforms, b))
    config = base
    for change in edits:
        config = _edit(config, change)
    trainer = Trainer(config, torch.device(device), 0, 1, name)
    for part in name.split("+"):
        if part == "no_summary_wide":
            trainer.model.tower.summary_wide = None
        if part == "wide_only":
            trainer.model.tower.head = _Zero(trainer.model.tower.head)
    state, t = TrainState(), config.train
    # The ids a model trained for `window` knows (docs/design.md §4.3); score_window reads them off the model.
    id_rows = known_id_rows(config.model, config.data.work_dir, window)
    trainer.model.id_rows = id_rows
    files = sample_files(config.data.work_dir, train_windows)
    stream = StreamConfig(token_budget=t.batch_token_budget, shuffle_buffer=t.shuffle_buffer, shuffle_units=True,
                          seed=t.seed, worker_processes=False)
    tasks = [task.task_name for task in config.model.tasks]
    rows = []
    for epoch in range(epochs):
        t0 = time.perf_counter()
        for _, batch in make_loader(files, config.model, stream, LoaderPosition(epoch=epoch), id_rows):
            trainer.step(transform(batch) if transform else batch, state)
        row = {"op": "quality_diagnose", "variant": name, "epoch": epoch + 1, "steps": state.step,
               "train_seconds": round(time.perf_counter() - t0, 1)}
        for split, w in (("eval", window), ("train_last", train_windows[-1])):
            probs, labels = _scores(trainer.model, config, w, transform)
            row[split] = {task: {"auc": round(auc(probs[:, i], labels[:, i]), 4),
                                 "log_loss": round(_log_loss(probs[:, i], labels[:, i]), 4)}
                          for i, task in enumerate(tasks)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def _job(args: tuple) -> list[dict]:
    return run_variant(*args)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--work-dir", type=Path, required=True, help="the data work dir holding samples/dt=...")
    p.add_argument("--window", type=date.fromisoformat, required=True, help="evaluation window")
    p.add_argument("--train-windows", type=int, default=None, help="default: the config's train_windows")
    p.add_argument("--variants", nargs="+", default=["base"])
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--device", default="cpu")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--label", default="", help="a note stored with every row (the experiment's question)")
    p.add_argument("--out", type=Path, default=RESULTS / "quality_diagnose.json")
    args = p.parse_args()
    base = apply_overrides(load_config(args.config), work_dir=str(args.work_dir.resolve()))
    n = args.train_windows or base.data.train_windows
    train_windows = [args.window - timedelta(days=i) for i in range(n, 0, -1)]
    jobs = [(v, base, args.window, train_windows, args.epochs, args.device) for v in args.variants]
    if args.jobs > 1:
        with mp.get_context("spawn").Pool(args.jobs) as pool:
            results = pool.map(_job, jobs)
    else:
        results = [_job(j) for j in jobs]
    meta = {"config": str(args.config), "eval_window": args.window.isoformat(),
            "train_windows": [w.isoformat() for w in train_windows], "device": args.device,
            "label": args.label, "torch": torch.__version__, "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d")}
    rows = [{**r, **meta} for rs in results for r in rs]
    previous = json.loads(args.out.read_text()) if args.out.exists() else []
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("[\n" + ",\n".join(json.dumps(r) for r in previous + rows) + "\n]\n")  # a row a line


if __name__ == "__main__":
    main()
