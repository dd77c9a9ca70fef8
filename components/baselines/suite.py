"""The baseline suite: five static models scored on the same samples the model sees, any data (docs/design.md §5).

``run_baselines`` reads the sample partitions of the training windows and of one eval window
(``components.baselines.features``), fits each baseline of ``components.baselines.models`` on the training
windows' candidates, scores every eval candidate and reports the exact AUC per task
(``hstu_model.metrics.auc``, the evaluator's), plus ``best``: per task the highest baseline and its name.

The result is cached as JSON at ``{work_dir}/baselines/<eval>__<first>_<last train window>.json`` (written
to a temporary file, then renamed) because the evaluator asks for it for the challenger and again for the
champion on the same window. A cache written for other tasks, an older suite or other sample files (names,
sizes, modification times: a rebuilt partition) is recomputed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
import uuid
from dataclasses import asdict, dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

from components.baselines.features import candidate_frame, task_labels
from components.baselines.models import BASELINES, SuiteData
from components.config import PipelineConfig
from components.data.windows import sample_files
from hstu_model.metrics import auc

logger = logging.getLogger(__name__)

SUITE_VERSION = 2  # bump when a baseline changes, so that cached results are recomputed


@dataclass(frozen=True)
class BaselineResult:
    """AUCs of the suite on one eval window.

    Attributes:
        aucs: baseline -> task -> AUC (NaN when the eval window has one class of the task).
        best: task -> (baseline, AUC) of the highest baseline; ("", NaN) when every AUC is NaN.
        cached: read from the cache rather than computed (not stored).
    """

    eval_window: str
    train_windows: tuple[str, ...]
    aucs: dict[str, dict[str, float]]
    best: dict[str, tuple[str, float]]
    train_candidates: int
    eval_candidates: int
    eval_samples: int
    seconds: float
    cached: bool = False

    def references(self) -> dict[str, dict[str, float]]:
        """``{"baseline_<name>": {task: auc}, ..., "baseline_best": {task: auc}}`` for the evaluator."""
        refs = {f"baseline_{name}": dict(values) for name, values in self.aucs.items()}
        refs["baseline_best"] = {task: value for task, (_, value) in self.best.items()}
        return refs


def cache_path(work_dir: str | Path, eval_window: date, train_windows: list[date]) -> Path:
    """``{work_dir}/baselines/<eval>__<first>_<last>.json`` of a sorted, non-empty ``train_windows``."""
    return (Path(work_dir) / "baselines"
            / f"{eval_window.isoformat()}__{train_windows[0].isoformat()}_{train_windows[-1].isoformat()}.json")


def best_per_task(aucs: dict[str, dict[str, float]]) -> dict[str, tuple[str, float]]:
    """task -> (baseline, AUC) with the highest AUC, NaNs ignored; ties go to the earlier baseline."""
    tasks = dict.fromkeys(t for values in aucs.values() for t in values)
    best: dict[str, tuple[str, float]] = {}
    for task in tasks:
        found = [(v, name) for name, values in aucs.items() if not math.isnan(v := values.get(task, math.nan))]
        best[task] = ("", math.nan) if not found else max(found, key=lambda x: x[0])[::-1]
    return best


def _fingerprint(config: PipelineConfig, windows: list[date]) -> str:
    """A digest of the windows' sample files (name, size, mtime): it changes when a partition is rebuilt."""
    digest = hashlib.sha256()
    for f in sample_files(config.data.work_dir, windows):
        stat = f.stat()
        digest.update(f"{f.parent.name}/{f.name}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return digest.hexdigest()[:16]


def _read_cache(path: Path, key: dict[str, Any]) -> BaselineResult | None:
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        logger.warning("ignoring the unreadable baseline cache %s: %s", path, exc)
        return None
    if raw.get("key") != key:
        logger.info("baseline cache %s is for other tasks, samples or suite version; recomputing", path)
        return None
    body = raw["result"]
    return BaselineResult(**{**body, "train_windows": tuple(body["train_windows"]),
                             "best": {t: (n, float(v)) for t, (n, v) in body["best"].items()}, "cached": True})


def _write_cache(path: Path, result: BaselineResult, key: dict[str, Any]) -> None:
    """Writes to a unique temporary name, then renames: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body: dict[str, Any] = asdict(result)
    del body["cached"]
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps({"key": key, "result": body}, indent=1))
    os.replace(tmp, path)


def _compute(config: PipelineConfig, eval_window: date, train_windows: list[date]) -> BaselineResult:
    t0 = time.monotonic()
    tasks = config.model.tasks
    train, evl = candidate_frame(config, train_windows), candidate_frame(config, [eval_window])
    if train.empty or evl.empty:
        raise ValueError(f"no candidates in the samples of {'the training windows' if train.empty else 'window'} "
                         f"{[str(w) for w in train_windows] if train.empty else eval_window}; expected at least one")
    data = SuiteData(train=train, eval=evl, y_train=task_labels(train, tasks),
                     tasks=tuple(t.task_name for t in tasks), contextual=tuple(config.model.feature_groups.contextual))
    y_eval = task_labels(evl, tasks)
    aucs: dict[str, dict[str, float]] = {}
    for name, scorer in BASELINES.items():
        scores = scorer(data)  # [M, T]
        aucs[name] = {task: auc(scores[:, t], y_eval[:, t]) for t, task in enumerate(data.tasks)}
        logger.debug("baseline %s on %s: %s", name, eval_window, aucs[name])
    return BaselineResult(eval_window=eval_window.isoformat(), train_windows=tuple(w.isoformat() for w in train_windows),
                          aucs=aucs, best=best_per_task(aucs), train_candidates=len(train),
                          eval_candidates=len(evl), eval_samples=int(evl["sample"].nunique()),
                          seconds=round(time.monotonic() - t0, 2))


def run_baselines(*, config: PipelineConfig, eval_window: date, train_windows: list[date],
                  use_cache: bool = True) -> BaselineResult:
    """Fits the suite on ``train_windows`` and scores it on ``eval_window``; reuses the cached result.

    Args:
        train_windows: windows strictly before ``eval_window`` with sample partitions (any order).
        use_cache: read a cached result when present (it is always written).
    Raises:
        ValueError: no training window, or one not before ``eval_window`` (docs/design.md §4.4), or no candidates.
        FileNotFoundError: a window has no sample partition under ``{work_dir}/samples``.
    """
    windows = sorted(set(train_windows))
    if not windows:
        raise ValueError(f"the baselines of window {eval_window} need at least one training window, got none")
    late = [str(w) for w in windows if w >= eval_window]
    if late:
        raise ValueError(f"training window(s) {late} are not before the evaluation window {eval_window} "
                         "(docs/design.md §4.4)")
    key = {"suite_version": SUITE_VERSION, "tasks": [[t.task_name, t.task_bitmask] for t in config.model.tasks],
           "samples": _fingerprint(config, [*windows, eval_window])}
    path = cache_path(config.data.work_dir, eval_window, windows)
    if use_cache and (cached := _read_cache(path, key)) is not None:
        logger.info("baselines of window %s read from %s", eval_window, path)
        return cached
    result = _compute(config, eval_window, windows)
    _write_cache(path, result, key)
    logger.info("baselines of window %s (%d training windows, %d + %d candidates) in %.1f s -> %s", eval_window,
                len(windows), result.train_candidates, result.eval_candidates, result.seconds, path)
    return replace(result, cached=False)


def format_table(result: BaselineResult) -> str:
    """Rows tasks, columns the baselines and the best one (AUC and name), as fixed-width text."""
    names = list(result.aucs)
    widths = [max(len(n), 6) + 2 for n in names]
    tasks = list(result.best)
    first = max([len("task"), *map(len, tasks)]) + 2
    lines = ["task".ljust(first) + "".join(n.rjust(w) for n, w in zip(names, widths)) + "  best"]
    for task in tasks:
        cells = "".join(f"{result.aucs[n].get(task, math.nan):>{w}.4f}" for n, w in zip(names, widths))
        name, value = result.best[task]
        lines.append(task.ljust(first) + cells + f"  {value:.4f} ({name or '-'})")
    return "\n".join(lines)
