"""Per-task binary cross-entropy over all candidates (docs/design.md §5); labels from the action bitmask (§4.2).

    label[c, t] = (item_action_weight[c] & task_bitmask[t]) > 0
    loss_t = mean_c BCEWithLogits(logits[c, t], label[c, t]);   total = sum_t weight_t * loss_t
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from hstu_model.batch import HstuBatch
from hstu_model.config import TaskConfig


def task_labels(batch: HstuBatch, tasks: Sequence[TaskConfig]) -> torch.Tensor:
    """Labels ``[C, T]`` float32 (0/1) from the candidates' bitmask labels.

    Raises:
        ValueError: the batch carries no labels (collated without ``item_action_weight``).
    """
    if batch.labels is None:
        raise ValueError("the batch has no labels: its rows lacked the 'item_action_weight' column")
    masks = torch.tensor([t.task_bitmask for t in tasks], dtype=torch.int64, device=batch.labels.device)
    return ((batch.labels[:, None] & masks[None, :]) != 0).float()


def multitask_loss(logits: torch.Tensor, batch: HstuBatch,
                   tasks: Sequence[TaskConfig]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Weighted sum of per-task BCE losses.

    Args:
        logits: [C, T] raw logits of ``model(batch)``; tasks: the config's tasks, in logit column order.

    Returns:
        (total loss, a scalar with grad; {task_name: detached per-task mean loss}).
    """
    if logits.shape != (batch.num_candidates, len(tasks)):
        raise ValueError(f"logits have shape {tuple(logits.shape)}, expected [{batch.num_candidates}, "
                         f"{len(tasks)}] (candidates, tasks)")
    labels = task_labels(batch, tasks)
    per_task = F.binary_cross_entropy_with_logits(logits.float(), labels, reduction="none").mean(0)  # [T]
    if logits.shape[0] == 0:
        per_task = logits.sum(0) * 0.0  # no candidates: zero loss that keeps the graph
    weights = torch.tensor([t.weight for t in tasks], dtype=per_task.dtype, device=per_task.device)
    total = (per_task * weights).sum()
    return total, {t.task_name: per_task[i].detach() for i, t in enumerate(tasks)}
