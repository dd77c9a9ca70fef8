"""The tower's wide term started as a logistic regression fitted on the training samples (train_config.prefit_wide).

The history summary's linear term (``FusionMtlTower.summary_wide``: per task, a weight on each of the summary's
logits and shares) has the form of a logistic regression on those columns. Fitted alone on the real subset's
training days it ranks the held-out day's clicks at 0.810; trained jointly with the deep part from zero for one
epoch it got to 0.80, because the deep part memorises ids before the linear term has converged (docs/design.md §5;
benchmarks/results/QUALITY_NOTES.md §17). So before the first step the term is set to that fit, and training
goes on from there.

Two passes over the training batches, without gradients: the first in training mode, so the model counts the
priors its summary is shrunk towards (history prior, item counter prior, side affinity) over all of them; the
second in eval mode reads the summaries with those priors. The counts then hold each batch twice once training
has counted it again, which leaves the pooled rates as they are. Under torchrun every rank gathers every rank's
rows and fits the same regression, so the replicated weights stay equal.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch
import torch.distributed as dist
from sklearn.linear_model import LogisticRegression

from hstu_model.batch import HstuBatch
from hstu_model.config import TaskConfig
from hstu_model.losses import task_labels

logger = logging.getLogger(__name__)

REGULARISATION = 1.0  # sklearn's C on standardised columns: the fit the probe measured


def prefit_wide(model: torch.nn.Module, batches: Callable[[], Iterable[HstuBatch]], tasks: Sequence[TaskConfig],
                device: torch.device) -> dict[str, float]:
    """Sets ``model.tower.summary_wide`` to per-task logistic regressions on the summaries of ``batches()``.

    Args:
        model: an unwrapped DlrmHSTU with a history summary; left in training mode.
        batches: called twice, each time an iterable of the training batches.
        tasks: the model's tasks, in the order of its logits.
    Returns:
        Each task's positive rate over the fitted candidates (a task without both labels keeps a zero term).
    """
    with torch.no_grad():
        model.train()
        for batch in batches():
            model.history_summary(batch.to(device))  # counts the priors
        model.eval()
        columns, labels = [], []
        for batch in batches():
            batch = batch.to(device)
            columns.append(model.tower.wide_inputs(model.history_summary(batch)).double().cpu())
            labels.append(task_labels(batch, tasks).cpu())
        model.train()
    x, y = _gathered(torch.cat(columns).numpy(), torch.cat(labels).numpy())
    weight, bias, rates = _fit(x, y, [t.task_name for t in tasks])
    wide = model.tower.summary_wide
    with torch.no_grad():
        wide.weight.copy_(torch.as_tensor(weight, dtype=wide.weight.dtype))
        wide.bias.copy_(torch.as_tensor(bias, dtype=wide.bias.dtype))
    logger.info("wide term fitted on %d candidates: positive rates %s", len(x),
                {k: round(v, 4) for k, v in rates.items()})
    return rates


def _fit(x: np.ndarray, y: np.ndarray, names: list[str]) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """Per task, a logistic regression on the standardised columns, returned on the columns' own scale."""
    mean, scale = x.mean(0), x.std(0)
    scale[scale == 0] = 1.0  # a constant column gets no weight either way
    z = (x - mean) / scale
    weight, bias = np.zeros((y.shape[1], x.shape[1])), np.zeros(y.shape[1])
    for t in range(y.shape[1]):
        if 0 < y[:, t].sum() < len(y):
            fit = LogisticRegression(C=REGULARISATION, max_iter=2000).fit(z, y[:, t])
            weight[t] = fit.coef_[0] / scale
            bias[t] = fit.intercept_[0] - (fit.coef_[0] * mean / scale).sum()
    return weight, bias, {name: float(y[:, t].mean()) for t, name in enumerate(names)}


def _gathered(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every rank's rows, in rank order (the rows as they are in one process)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x, y
    parts: list = [None] * dist.get_world_size()
    dist.all_gather_object(parts, (x, y))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
