"""The trainer: DlrmHSTU on the sample windows before the evaluation window, tracked in MLflow (docs/design.md §4.4, §7).

``train(config=..., eval_window=...)`` streams the training windows' samples (``components.training.loader``: token
budget batches, buffer shuffle, worker processes), steps row-wise Adagrad (or Adam) fused into the backward
pass for the TorchRec embedding tables and Adam(W) for the dense parameters (linear LR warm-up for both,
gradient clipping of the dense part, bf16 autocast on GPU, TF32 off unless ``allow_tf32``), checkpoints every
``checkpoint_every_steps`` and at the end (``components.training.checkpoint``), evaluates on the evaluation window,
writes ``{work_dir}/runs/<window>/result.json`` and the model state, logs the run to MLflow and registers a
new model version.

A killed run started again with the same config and windows resumes from its last checkpoint and ends with
the same final metrics as an uninterrupted run (bit-identical on CPU; GPU atomics may differ in the last bits).

One process needs no launcher; ``torchrun --nproc-per-node N -m components.training.train --config C --window D``
trains data-parallel with TorchRec's DistributedModelParallel (gloo on CPU, nccl on GPU).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import torch

from components.config import PipelineConfig, apply_overrides, load_config
from components.data.id_vocab import known_id_rows, model_vocab_text, parse_model_vocab
from components.data.windows import sample_files, select_training_windows, training_windows
from components.training import checkpoint as ckpt
from components.training import plots
from components.training.evaluate import EvalResult, evaluate_model
from components.training.loader import LoaderPosition, StreamConfig, make_loader, sample_tokens
from components.training.train_loop import Progress, Trainer, TrainState, init_distributed
from components.training.wide_prefit import prefit_wide
from hstu_model.id_rows import IdRows

logger = logging.getLogger(__name__)
ID_ROWS_FILE = "id_vocabulary.json"  # the run's raw id -> row mapping, beside its checkpoints and results


class TrainingInterrupted(RuntimeError):
    """Raised by the ``stop_after_steps`` hook: the run stopped as if killed (no final checkpoint, no eval)."""


@dataclass(frozen=True)
class TrainResult:
    """What one training run produced; ``registered_version`` is None when registration was off or failed."""

    window: str
    train_windows: list[str]
    steps: int
    samples: int
    tokens: int
    final_loss: float
    metrics: dict[str, Any]
    references: dict[str, dict[str, float]]
    run_id: str | None
    model_uri: str | None
    registered_version: str | None
    result_path: str
    model_state_path: str
    resumed_from_step: int
    seconds: float
    loss_curve: list[tuple[int, float]] = field(default_factory=list)


def run_dir(config: PipelineConfig, window: date) -> Path:
    """``{work_dir}/runs/<window>``: checkpoints, result.json, model state and plots of the window's training."""
    return Path(config.data.work_dir) / "runs" / window.isoformat()


def _windows(config: PipelineConfig, eval_window: date, train_windows: list[date] | None) -> list[date]:
    """The training windows: given, else the ``data_config.train_windows`` before ``eval_window`` that exist."""
    return select_training_windows(Path(config.data.work_dir) / "samples", eval_window,
                                   count=config.data.train_windows, window_days=config.data.window_days,
                                   given=train_windows)


def length_histogram(files: list[Path], config: PipelineConfig) -> np.ndarray:
    """int64 [R] tokens per sample of ``files``, read one row group at a time (two list columns only)."""
    g = config.model.feature_groups
    out = []
    for f in files:
        pf = pq.ParquetFile(f)
        for i in range(pf.num_row_groups):
            out.append(sample_tokens(pf.read_row_group(i, columns=[g.uih[0], g.candidate[0]]), config.model))
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def _stream(config: PipelineConfig, rank: int, world: int) -> StreamConfig:
    t = config.train
    return StreamConfig(token_budget=t.batch_token_budget, shuffle_buffer=t.shuffle_buffer, shuffle_units=True,
                        seed=t.seed, rank=rank, world_size=world, num_roles=max(1, t.num_workers),
                        worker_processes=t.num_workers > 0)


def _id_rows(config: PipelineConfig, eval_window: date, folder: Path) -> IdRows:
    """The run's raw id -> row mapping: the ids the samples showed before ``eval_window`` (docs/design.md §4.3).

    Frozen in ``folder`` at the first start, so a resumed run maps ids as it began even if the vocabularies grew.
    """
    frozen = folder / ID_ROWS_FILE
    if frozen.is_file():
        return IdRows(config.model, parse_model_vocab(frozen.read_text()))
    id_rows = known_id_rows(config.model, config.data.work_dir, eval_window)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{ID_ROWS_FILE}.{os.getpid()}"
    tmp.write_text(model_vocab_text(id_rows.vocab))
    tmp.replace(frozen)
    logger.info("id vocabularies before window %s: %s", eval_window, id_rows.sizes())
    return id_rows


def _epochs(trainer: Trainer, state: TrainState, files: list[Path], config: PipelineConfig,
            progress: Progress, stop_after_steps: int | None, folder: Path, id_rows: IdRows) -> None:
    """Runs the epochs from ``state``'s position to the end (or ``max_steps``)."""
    t, stream = config.train, _stream(config, trainer.rank, trainer.world)
    for epoch in range(state.position.epoch, t.epochs):
        if state.position.epoch != epoch:
            state.position = LoaderPosition(epoch=epoch)
        batches = iter(make_loader(files, config.model, stream, state.position, id_rows))
        while not (t.max_steps and state.step >= t.max_steps):
            item = next(batches, None)
            if not trainer.all_have(item is not None):
                break
            role, batch = item
            trainer.step(batch, state)
            state.position.advance(role, stream.num_roles)
            progress.update(state)
            if t.checkpoint_every_steps and state.step % t.checkpoint_every_steps == 0:
                trainer.save(folder, state)
            if stop_after_steps is not None and state.step >= stop_after_steps:
                raise TrainingInterrupted(f"stopped after step {state.step} (stop_after_steps hook)")
        if t.max_steps and state.step >= t.max_steps:
            break
        state.position = LoaderPosition(epoch=epoch + 1)
    progress.update(state, flush=True)  # the steps since the last logged interval count too


def _fit(config: PipelineConfig, windows: list[date], eval_window: date, tracker: Any,
         stop_after_steps: int | None) -> tuple[Trainer, TrainState, int, IdRows]:
    """Builds or resumes the trainer and trains. Returns (trainer, final state, step resumed from, id mapping)."""
    rank, world, device = init_distributed(config.train.device)
    files = sample_files(config.data.work_dir, windows)
    digest = ckpt.config_digest(config.text, [w.isoformat() for w in windows])
    # One folder per config and windows: a retry resumes, a rerun with other Params starts fresh beside it.
    folder = run_dir(config, eval_window) / "checkpoints" / digest
    id_rows = _id_rows(config, eval_window, folder)
    trainer = Trainer(config, device, rank, world, digest)
    state = trainer.resume(folder)
    resumed_from = state.step
    if config.train.prefit_wide and state.step == 0:  # a resumed run has the fitted term in its checkpoint
        stream = _stream(config, rank, world)
        prefit_wide(getattr(trainer.model, "module", trainer.model),  # DistributedModelParallel's own module
                    lambda: (b for _, b in make_loader(files, config.model, stream, None, id_rows)),
                    config.model.tasks, trainer.device)
    tracker.start(config, resumed_from)
    tracker.replay(state.history)
    with Progress(config.train, rank, state.step, tracker, trainer.reduce_mean) as progress:
        _epochs(trainer, state, files, config, progress, stop_after_steps, folder, id_rows)
    trainer.save(folder, state)
    return trainer, state, resumed_from, id_rows


def train(*, config: PipelineConfig, eval_window: date, train_windows: list[date] | None = None,
          tags: dict[str, str] | None = None, register: bool = True,
          stop_after_steps: int | None = None) -> TrainResult:
    """Trains on the windows before ``eval_window``, evaluates on it, logs to MLflow and registers a version.

    Args:
        config: the resolved pipeline config. eval_window: the run's window (start date).
        train_windows: explicit training windows (all before ``eval_window``); default: the
            ``data_config.train_windows`` windows before it that have samples.
        tags: MLflow run tags (``dag_id``, ``dag_run_id`` are picked up; defaults "manual").
        register: create a new version of ``promotion_config.registered_model_name``.
        stop_after_steps: test hook simulating a kill after that many steps (raises TrainingInterrupted).
    Returns:
        TrainResult (also written to ``{work_dir}/runs/<window>/result.json``).
    Raises:
        FileNotFoundError: no samples for the windows. TrainingInterrupted: the stop hook fired.
        components.registry.store.TrackingUnavailableError: MLflow unreachable; training finished and its results
            were written locally first, and no model version was registered.
    """
    from components.training.train_tracking import RunTracker

    t0 = time.perf_counter()
    windows = _windows(config, eval_window, train_windows)
    _configure_precision(config)
    tracker = RunTracker.open(config, eval_window, windows, tags or {})
    with tracker.active():
        trainer, state, resumed_from, id_rows = _fit(config, windows, eval_window, tracker, stop_after_steps)
        model = trainer.export_model()  # a collective under torchrun: every rank takes part
        model.id_rows = id_rows  # pickled with the logged model: every later scoring maps ids as training did
        if trainer.rank != 0:
            trainer.close()
            return _worker_result(config, eval_window, windows, state, resumed_from, t0)
        evaluation = evaluate_model(model=model, config=config, window=eval_window, train_windows=windows)
        result = _write_local(config, eval_window, windows, state, evaluation, model, resumed_from, t0)
        tracker.finish(config, result, evaluation, model, length_histogram(sample_files(
            config.data.work_dir, windows), config), state)
    trainer.close()
    version = tracker.register(config, result) if register else None
    result = dataclasses.replace(result, run_id=tracker.run_id, model_uri=tracker.model_uri)
    if version is not None:
        result = dataclasses.replace(result, registered_version=version.version, model_uri=version.model_uri)
    Path(result.result_path).write_text(json.dumps(dataclasses.asdict(result), indent=1, default=str))
    tracker.raise_if_failed(result)
    return result


def _configure_precision(config: PipelineConfig) -> None:
    torch.backends.cuda.matmul.allow_tf32 = config.train.allow_tf32
    torch.backends.cudnn.allow_tf32 = config.train.allow_tf32


def _result(config: PipelineConfig, window: date, windows: list[date], state: TrainState,
            metrics: dict[str, Any], references: dict[str, dict[str, float]], resumed_from: int, t0: float,
            folder: Path) -> TrainResult:
    return TrainResult(
        window=window.isoformat(), train_windows=[w.isoformat() for w in windows], steps=state.step,
        samples=state.samples, tokens=state.tokens, final_loss=state.last_loss(), metrics=metrics,
        references=references, run_id=None, model_uri=None, registered_version=None,
        result_path=str(folder / "result.json"), model_state_path=str(folder / "model_state.pt"),
        resumed_from_step=resumed_from, seconds=time.perf_counter() - t0,
        loss_curve=[(s, loss) for s, loss, *_ in state.history])


def _worker_result(config, window, windows, state, resumed_from, t0) -> TrainResult:
    return _result(config, window, windows, state, {}, {}, resumed_from, t0, run_dir(config, window))


def _write_local(config: PipelineConfig, window: date, windows: list[date], state: TrainState,
                 evaluation: EvalResult, model: torch.nn.Module, resumed_from: int, t0: float) -> TrainResult:
    """Writes result.json, model_state.pt and the plots under ``runs/<window>/`` (before any MLflow call)."""
    folder = run_dir(config, window)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), folder / "model_state.pt")
    (folder / ID_ROWS_FILE).write_text(model_vocab_text(model.id_rows.vocab))
    (folder / "config.txt").write_text(config.text)
    result = _result(config, window, windows, state, evaluation.metrics(), evaluation.references, resumed_from,
                     t0, folder)
    (folder / "result.json").write_text(json.dumps(dataclasses.asdict(result), indent=1, default=str))
    if state.history:
        steps, losses = zip(*[(s, loss) for s, loss, *_ in state.history])
        plots.save_png(plots.loss_curve(steps, losses), folder / "plots" / "loss_curve.png")
    plots.save_png(plots.auc_bars(evaluation.auc, evaluation.references), folder / "plots" / "auc_by_task.png")
    logger.info("results of window %s written to %s", window, folder)
    return result


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m components.training.train", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, type=Path)
    parser.add_argument("--window", required=True, type=date.fromisoformat, help="evaluation window YYYY-MM-DD")
    parser.add_argument("--train-windows", type=int, default=None, help="number of windows before --window")
    parser.add_argument("--kernel", choices=("TRITON", "PYTORCH"), help="override model_config.kernel")
    parser.add_argument("--no-register", action="store_true")
    parser.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE",
                        help="MLflow run tag, repeatable (the DAG passes dag_id, dag_run_id and its Params)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    bad = [t for t in args.tag if "=" not in t]
    if bad:
        parser.error(f"--tag needs KEY=VALUE, got {bad[0]!r}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Entry point for ``torchrun -m components.training.train`` (and one process without a launcher)."""
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    config = apply_overrides(load_config(args.config), kernel=args.kernel)
    windows = None
    if args.train_windows:
        windows = training_windows(args.window, count=args.train_windows, window_days=config.data.window_days)
    tags = dict(t.split("=", 1) for t in args.tag)
    result = train(config=config, eval_window=args.window, train_windows=windows, register=not args.no_register,
                   tags=tags)
    if int(os.environ.get("RANK", "0")) == 0:
        auc = {k: v for k, v in result.metrics.items() if k.endswith("/auc")}
        print(json.dumps(dataclasses.asdict(result), default=str) if args.json else
              f"trained {result.steps} steps, final loss {result.final_loss:.4f}, {auc}, "
              f"version {result.registered_version}")
    return 0 if not math.isnan(result.final_loss) else 1


if __name__ == "__main__":
    sys.exit(main())
