"""What a training run logs to MLflow, through ``components.registry`` (the only stage that imports mlflow).

One run per training (tags: ``dag_id``, ``dag_run_id``, ``window``, ``train_windows``, ``resumed_from_step``):
params (train config, windows), the resolved config text, each window's data statistics JSON, per-step loss
and throughput, final per-task metrics (AUC, grouped AUC, calibration; oracle and baseline AUCs on generated
data), system metrics (``tracking_config.log_system_metrics``), plots (loss curve, AUC bars vs baseline and
oracle, sequence-length histogram) as PNGs, the result JSON and the model (``mlflow.pytorch``, pickle).
After the run ended FINISHED a new version of the registered model is created, tagged with run and windows.

The tracking store going away never stops the training: the first failed call is remembered, logging stops,
the results are written locally, no version is registered, and ``raise_if_failed`` raises at the very end.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import logging
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import torch

from components.config import PipelineConfig
from components.data.id_vocab import model_vocab_text
from components.data.windows import sample_files
from components.registry.ranker import input_example
from components.registry.runs import TrackedRun, start_run
from components.registry.store import TrackingUnavailableError, connect
from components.registry.versions import RegisteredVersion, register_version
from components.training import plots

logger = logging.getLogger(__name__)


def _rank() -> int:
    import os

    return int(os.environ.get("RANK", "0"))


def data_statistics(config: PipelineConfig, windows: list[date]) -> dict[str, dict[str, Any]]:
    """``{window: statistics}`` from ``{work_dir}/stats/dt=YYYY-MM-DD.json`` (windows without one are skipped)."""
    out = {}
    for w in windows:
        path = Path(config.data.work_dir) / "stats" / f"dt={w.isoformat()}.json"
        if path.exists():
            out[w.isoformat()] = json.loads(path.read_text())
        else:
            logger.warning("no data statistics for window %s at %s", w, path)
    return out


class RunTracker:
    """The MLflow side of one training run; every method is a no-op on ranks > 0 or once tracking failed."""

    def __init__(self, target: Any, window: date, windows: list[date], tags: dict[str, str],
                 error: Exception | None):
        self.target, self.window, self.windows, self.tags = target, window, windows, tags
        self.error = error
        self.run: TrackedRun | None = None
        self.run_id: str | None = None
        self.model_uri: str | None = None

    @classmethod
    def open(cls, config: PipelineConfig, window: date, windows: list[date], tags: dict[str, str]) -> RunTracker:
        """Connects to the tracking store on rank 0; an unreachable store is remembered, not raised."""
        if _rank() != 0:
            return cls(None, window, windows, tags, None)
        try:
            return cls(connect(config), window, windows, tags, None)
        except TrackingUnavailableError as exc:
            logger.error("%s; training continues and writes its results locally", exc)
            return cls(None, window, windows, tags, exc)

    def _fail(self, exc: Exception) -> None:
        if self.error is None:
            logger.error("MLflow logging failed (%s: %s); training continues without tracking",
                         type(exc).__name__, exc)
            self.error = exc
        self.run = None

    def _call(self, fn, *args: Any, **kwargs: Any) -> Any:
        if self.run is None:
            return None
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - any tracking failure must not stop the training
            self._fail(exc)
            return None

    @contextlib.contextmanager
    def active(self, config: PipelineConfig | None = None) -> Iterator[RunTracker]:
        """Holds the MLflow run open around training; it ends FINISHED only if nothing failed."""
        if self.target is None:
            yield self
            return
        dag_id = self.tags.get("dag_id", "manual")
        run_tags = {k: v for k, v in self.tags.items() if k not in ("dag_id", "dag_run_id")}
        run_tags["train_windows"] = ",".join(w.isoformat() for w in self.windows)
        cm = start_run(self.target, dag_id=dag_id, dag_run_id=self.tags.get("dag_run_id", f"manual__{self.window}"),
                       window=self.window.isoformat(), tags=run_tags)
        try:
            self.run = cm.__enter__()
            self.run_id = self.run.run_id
        except Exception as exc:  # noqa: BLE001
            self._fail(exc)
            yield self
            return
        try:
            yield self
        except BaseException:
            with contextlib.suppress(Exception):
                cm.__exit__(*sys.exc_info())
            raise
        if self.error is not None:  # end the run FAILED so that it can never be registered
            with contextlib.suppress(BaseException):
                cm.__exit__(RuntimeError, RuntimeError(str(self.error)), None)
            return
        try:
            cm.__exit__(None, None, None)
        except Exception as exc:  # noqa: BLE001
            self._fail(exc)

    # ---- during training
    def start(self, config: PipelineConfig, resumed_from: int) -> None:
        """Params, config text and data statistics (once, at the start)."""
        run = self.run
        if run is None:
            return
        self._call(run.log_params, {"train": dataclasses.asdict(config.train), "kernel": config.model.kernel,
                                    "max_seq_len": config.model.max_seq_len,
                                    "train_windows": ",".join(w.isoformat() for w in self.windows),
                                    "resumed_from_step": resumed_from})
        self._call(run.log_config_text, config.text)
        for window, stats in data_statistics(config, [*self.windows, self.window]).items():
            self._call(run.log_statistics, stats, prefix=f"data/{window}")

    def replay(self, history: list[tuple[int, float, float, float]]) -> None:
        """Logs the loss curve of a resumed run's earlier steps (from its checkpoint) into this run."""
        for point in history:
            self.log_step(point)

    def log_step(self, point: tuple[int, float, float, float]) -> None:
        step, loss, samples_s, tokens_s = point
        if self.run is not None:
            self._call(self.run.log_step_metrics, {"train/loss": loss, "train/samples_per_s": samples_s,
                                                   "train/tokens_per_s": tokens_s}, step=step)

    # ---- at the end
    def finish(self, config: PipelineConfig, result: Any, evaluation: Any, model: torch.nn.Module,
               lengths: np.ndarray, state: Any) -> None:
        """Final metrics, plots, result JSON and the model; must run inside ``active()``."""
        run = self.run
        if run is None:
            return
        self._call(run.log_step_metrics, evaluation.metrics(), step=state.step)
        # The kernels that actually ran (kernel TRITON off-GPU runs the PyTorch twin when the config allows it).
        self._call(run.log_params, {"model.backend": getattr(model, "backend", "unknown")})
        self._call(run.log_step_metrics, {"train/final_loss": result.final_loss, "train/samples": state.samples,
                                          "train/tokens": state.tokens}, step=state.step)
        if state.history:
            steps, losses = zip(*[(s, loss) for s, loss, *_ in state.history])
            self._call(run.log_figure, plots.loss_curve(steps, losses), "plots/loss_curve.png")
        self._call(run.log_figure, plots.auc_bars(evaluation.auc, evaluation.references), "plots/auc_by_task.png")
        if len(lengths):
            self._call(run.log_figure, plots.length_histogram(lengths), "plots/sequence_length_histogram.png")
        self._call(run.log_config_text, json.dumps(evaluation.to_dict(), indent=1, default=str),
                   artifact_file="evaluation/eval.json")
        self._call(run.log_config_text, json.dumps(dataclasses.asdict(result), indent=1, default=str),
                   artifact_file="result/result.json")
        if getattr(model, "id_rows", None) is not None:  # the model carries it too; this copy is for reading
            self._call(run.log_config_text, model_vocab_text(model.id_rows.vocab), artifact_file="vocab/ids.json")
        example = input_example(sample_files(config.data.work_dir, [self.window])[0])
        logged = self._call(run.log_ranker, copy.deepcopy(model).cpu().eval(), example)
        self.model_uri = logged.model_uri if logged is not None else None

    def register(self, config: PipelineConfig, result: Any) -> RegisteredVersion | None:
        """A new version of the registered model (after the run ended FINISHED); None when tracking failed."""
        if self.target is None or self.error is not None or self.model_uri is None:
            return None
        aucs = {f"auc/{k.split('/')[1]}": f"{v:.6f}" for k, v in result.metrics.items()
                if k.count("/") == 2 and k.endswith("/auc") and k.startswith("eval/")}
        try:
            return register_version(self.target, run_id=self.run_id, model_uri=self.model_uri,
                                    window=self.window.isoformat(),
                                    train_windows=[w.isoformat() for w in self.windows],
                                    model_name=config.promotion.registered_model_name, tags=aucs)
        except Exception as exc:  # noqa: BLE001
            self._fail(exc)
            return None

    def raise_if_failed(self, result: Any) -> None:
        """Raises TrackingUnavailableError when tracking failed at any point (after local results exist)."""
        if self.error is None:
            return
        raise TrackingUnavailableError(
            f"training of window {result.window} finished ({result.steps} steps) and wrote its results to "
            f"{result.result_path} and {result.model_state_path}, but MLflow tracking failed: {self.error}. "
            "No model version was registered; start the tracking server and run the training again "
            "(it resumes from its final checkpoint).")
