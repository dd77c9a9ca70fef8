"""The evaluator: per-task AUC, grouped AUC (per user) and calibration of a model on one window (docs/design.md §5, §7).

Streams the window's samples through the model batch by batch (token budget ``eval_config.batch_token_budget``)
and keeps only one score, label and user id per candidate and task, so the AUCs are exact (rank based over the
whole window), not approximated per batch. Calibration per task = mean predicted probability / label rate
(1.0 is calibrated). References, so reports show model vs baseline (vs oracle): with the training windows
given, the baseline suite of ``components.baselines.suite`` fitted on their samples and scored on this window's
(``baseline_<name>`` and ``baseline_best``, any data); on generated data (``{work_dir}/raw/truth`` exists)
also the oracle AUC of the true probabilities, computed over all of the window's raw events.

Used by the trainer after training and by the promotion gate on any registered version (``evaluate_uri``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import torch

from components.config import PipelineConfig
from components.data.windows import sample_files
from components.training.loader import StreamConfig, make_loader
from hstu_model.config import ModelConfig, TaskConfig
from hstu_model.id_rows import IdRows
from hstu_model.losses import task_labels
from hstu_model.metrics import auc, grouped_auc

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskMetrics:
    """One task's metrics on the window (AUC NaN when a class is missing)."""

    auc: float
    grouped_auc: float
    mean_prediction: float
    label_rate: float
    calibration: float  # mean_prediction / label_rate
    positives: int
    candidates: int


@dataclass(frozen=True)
class EvalResult:
    """Metrics of one model on one window; ``references`` holds e.g. ``{"oracle": {task: auc}, ...}``."""

    window: str
    samples: int
    candidates: int
    tasks: dict[str, TaskMetrics]
    references: dict[str, dict[str, float]] = field(default_factory=dict)
    model_uri: str | None = None

    @property
    def auc(self) -> dict[str, float]:
        """task -> AUC (what the gate compares)."""
        return {t: m.auc for t, m in self.tasks.items()}

    def metrics(self, prefix: str = "eval") -> dict[str, float]:
        """Flat ``{"eval/<task>/auc": value, ...}`` for MLflow (references as ``<prefix>/<ref>/<task>/auc``)."""
        out: dict[str, float] = {f"{prefix}/samples": float(self.samples), f"{prefix}/candidates": float(self.candidates)}
        for task, m in self.tasks.items():
            out.update({f"{prefix}/{task}/{k}": float(v) for k, v in asdict(m).items()})
        for ref, values in self.references.items():
            out.update({f"{prefix}/{ref}/{task}/auc": float(v) for task, v in values.items()})
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"window": self.window, "samples": self.samples, "candidates": self.candidates,
                "tasks": {t: asdict(m) for t, m in self.tasks.items()}, "references": self.references,
                "model_uri": self.model_uri}


def _device(config: PipelineConfig) -> torch.device:
    want = config.train.device
    if want == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(want)


class _LegacyModuloRows(IdRows):
    """The mapping of versions trained before id vocabularies existed: ids modulo the table size, as they
    were trained (scoring them with any other mapping would judge a different model)."""

    def rows(self, feature: str, ids: np.ndarray) -> np.ndarray:
        return np.remainder(np.asarray(ids, np.int64), self.tables[self.table_of[feature]].num_embeddings)


def model_id_rows(model: torch.nn.Module, config: ModelConfig) -> IdRows | None:
    """The raw id -> row mapping ``model`` was trained with (``DlrmHSTU.id_rows``, docs/design.md §4.3)."""
    if "id_rows" in vars(model):
        return model.id_rows
    logger.warning("the model carries no id vocabulary (trained before vocabularies): its ids are taken modulo "
                   "the table sizes, as in its training")
    return _LegacyModuloRows(config, None)


@torch.no_grad()
def score_window(model: torch.nn.Module, config: PipelineConfig, window: date,
                 device: torch.device | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Runs ``model`` over the window's samples, in file order.

    Returns:
        probabilities float64 [C, T], labels float64 [C, T] (0/1), user ids int64 [C], samples B.
    """
    device = device or next(model.parameters()).device
    files = sample_files(config.data.work_dir, [window])
    budget = max(config.eval.batch_token_budget, config.model.max_seq_len)
    loader = make_loader(files, config.model, StreamConfig(token_budget=budget),
                         id_rows=model_id_rows(model, config.model))
    was_training = model.training
    model.eval()
    probs, labels, users, samples = [], [], [], 0
    autocast = _autocast(config, device)
    for _, batch in loader:
        batch = batch.to(device)
        with autocast:
            logits = model(batch)
        probs.append(torch.sigmoid(logits.float()).double().cpu().numpy())
        labels.append(task_labels(batch, config.model.tasks).double().cpu().numpy())
        users.append(batch.user_ids.cpu().numpy())
        samples += batch.batch_size
    model.train(was_training)
    tasks = len(config.model.tasks)
    if not probs:
        raise ValueError(f"window {window} has no samples under {config.data.work_dir}")
    return (np.concatenate(probs).reshape(-1, tasks), np.concatenate(labels).reshape(-1, tasks),
            np.concatenate(users), samples)


def _autocast(config: PipelineConfig, device: torch.device):
    precision = config.train.precision
    bf16 = precision == "BF16" or (precision == "AUTO" and device.type == "cuda")
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)


def task_metrics(probs: np.ndarray, labels: np.ndarray, users: np.ndarray, grouped: bool = True) -> TaskMetrics:
    """Metrics of one task from ``probs [C]``, 0/1 ``labels [C]`` and ``users [C]``."""
    positives = int(labels.sum())
    rate = positives / max(len(labels), 1)
    mean = float(probs.mean()) if len(probs) else float("nan")
    return TaskMetrics(auc=auc(probs, labels), grouped_auc=grouped_auc(probs, labels, users) if grouped else math.nan,
                       mean_prediction=mean, label_rate=rate,
                       calibration=mean / rate if rate > 0 else math.nan, positives=positives,
                       candidates=int(len(labels)))


def _reference_task(task: TaskConfig) -> str | None:
    """The datagen task name of a one-bit task (bit i <-> TASK_NAMES[i], docs/design.md §4.2), else None."""
    from components.datagen import TASK_NAMES

    mask = task.task_bitmask
    if mask & (mask - 1):
        return None
    bit = mask.bit_length() - 1
    return TASK_NAMES[bit] if bit < len(TASK_NAMES) else None


def _oracle_aucs(config: PipelineConfig, window: date) -> dict[str, dict[str, float]]:
    """Oracle AUCs per model task on generated data; {} when ``{work_dir}/raw/truth`` is absent."""
    from components.datagen import oracle_aucs

    raw = Path(config.data.work_dir) / "raw"
    if not (raw / "truth").is_dir():
        return {}
    days = timedelta(days=config.data.window_days)
    names = {t.task_name: _reference_task(t) for t in config.model.tasks}
    try:
        found = oracle_aucs(data=raw, window_start=window, window_end=window + days)
    except (ValueError, FileNotFoundError) as exc:
        logger.warning("no oracle AUC for window %s: %s", window, exc)
        return {}
    return {kind: {t: values[n] for t, n in names.items() if n in values} for kind, values in found.items()}


def _baseline_aucs(config: PipelineConfig, window: date, train_windows: list[date]) -> dict[str, dict[str, float]]:
    """The baseline suite's AUCs as ``baseline_<name>`` references; {} (and a warning) without samples."""
    from components.baselines.suite import run_baselines

    try:
        return run_baselines(config=config, eval_window=window, train_windows=train_windows).references()
    except (ValueError, FileNotFoundError) as exc:
        logger.warning("no baseline AUC for window %s: %s", window, exc)
        return {}


def reference_aucs(config: PipelineConfig, window: date, train_windows: list[date] | None = None
                   ) -> dict[str, dict[str, float]]:
    """Reference AUCs per model task: ``{ref: {task: auc}}``.

    The oracle ones (``oracle``, ``oracle_window_start``) on generated data; with ``train_windows``, the
    baseline suite (``baseline_<name>``, ``baseline_best``) on the samples of any data. A reference that
    cannot be computed (no truth, no samples) is left out with a warning, never an error.
    """
    out = _oracle_aucs(config, window)
    if train_windows:
        out.update(_baseline_aucs(config, window, train_windows))
    return out


def evaluate_model(*, model: torch.nn.Module, config: PipelineConfig, window: date,
                   train_windows: list[date] | None = None, model_uri: str | None = None) -> EvalResult:
    """Evaluates ``model`` (an unsharded DlrmHSTU) on the samples of ``window``.

    Args:
        train_windows: the windows the model was trained on; the baseline suite is fitted on their samples.
        model_uri: recorded in the result.
    Raises:
        FileNotFoundError: the window has no samples. ValueError: the window's samples are empty.
    """
    probs, labels, users, samples = score_window(model, config, window)
    # Grouped AUC (one user's candidates against each other): for every task when eval_config.grouped_auc,
    # else for the tasks whose metrics ask for it.
    tasks = {t.task_name: task_metrics(probs[:, i], labels[:, i], users,
                                       config.eval.grouped_auc or "grouped_auc" in t.metrics)
             for i, t in enumerate(config.model.tasks)}
    result = EvalResult(window=window.isoformat(), samples=samples, candidates=int(len(users)), tasks=tasks,
                        references=reference_aucs(config, window, train_windows), model_uri=model_uri)
    summary = ", ".join(f"{t} AUC {m.auc:.4f}" for t, m in tasks.items())
    logger.info("evaluated %s on window %s: %d samples, %d candidates; %s", model_uri or "model", window,
                samples, len(users), summary)
    return result


def evaluate_uri(*, model_uri: str, config: PipelineConfig, window: date,
                 train_windows: list[date] | None = None) -> EvalResult:
    """Loads a logged or registered model (``models:/NAME/VERSION``, ``models:/NAME@alias``) and evaluates it.

    Every version is scored with its own model config, which it carries (``model.config``: feature groups,
    table sizes, tasks and their order, history mode): a champion trained before the config changed is still
    scored as it was trained, and its AUCs are keyed by its own task names, so the gate compares tasks by name.
    Only the data section (where the window's samples are) and the evaluation settings come from ``config``.

    Raises:
        components.registry.store.TrackingUnavailableError: the tracking store is unreachable.
    """
    from components.registry.store import resolve_tracking_uri
    from components.registry.versions import load_model
    from hstu_model.backend import resolve_backend, use_backend

    device = _device(config)
    model = load_model(model_uri, tracking_uri=resolve_tracking_uri(config), map_location=str(device))
    # The kernels the model was trained with may not run here (Triton from a GPU run, scored on a CPU): scoring
    # with the PyTorch twin computes the same function, so it is always allowed (the log says so).
    use_backend(model, resolve_backend(config.model.kernel, device, strict=False))
    own = getattr(model, "config", None)
    scoring = config.replace(model=own) if isinstance(own, type(config.model)) else config
    return evaluate_model(model=model.to(device), config=scoring, window=window, train_windows=train_windows,
                          model_uri=model_uri)
