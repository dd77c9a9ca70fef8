import math

import numpy as np
import pytest
import torch
from samples import make_rows, small_config

from hstu_model.batch import collate
from hstu_model.losses import multitask_loss, task_labels
from hstu_model.metrics import auc, grouped_auc


def _pairwise_auc(scores, labels):
    pos, neg = scores[labels == 1], scores[labels == 0]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return wins / (len(pos) * len(neg))


def test_auc_matches_pairwise_count_with_ties():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, 200).astype(float)  # many ties
    labels = (rng.random(200) < 0.4).astype(float)
    assert auc(scores, labels) == pytest.approx(_pairwise_auc(scores, labels), abs=1e-12)
    assert auc(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1])) == pytest.approx(0.75)
    assert auc([0.5, 0.5], [0, 1]) == 0.5
    assert math.isnan(auc([0.1, 0.2], [1, 1]))


def test_grouped_auc_weights_groups_by_size_and_skips_one_class_groups():
    scores = [0.9, 0.1, 0.3, 0.2, 0.8, 0.7, 0.5]
    labels = [1, 0, 0, 1, 1, 1, 0]
    groups = [7, 7, 3, 3, 3, 5, 5]
    # group 7: AUC 1 (2 items); group 3: positives 0.2, 0.8 vs 0.3 -> 0.5 (3 items); group 5: 1 (2 items)
    assert grouped_auc(scores, labels, groups) == pytest.approx((2 * 1.0 + 3 * 0.5 + 2 * 1.0) / 7)
    assert grouped_auc([0.1, 0.2, 0.3], [1, 1, 0], [1, 1, 2]) != grouped_auc([0.1, 0.2, 0.3], [1, 0, 0], [1, 1, 2])
    assert math.isnan(grouped_auc([0.1, 0.2], [1, 0], [1, 2]))
    rng = np.random.default_rng(1)
    s, y, g = rng.random(300), (rng.random(300) < 0.5).astype(float), rng.integers(0, 4, 300)
    expected = sum((g == k).sum() * _pairwise_auc(s[g == k], y[g == k]) for k in range(4)) / 300
    assert grouped_auc(s, y, g) == pytest.approx(expected, abs=1e-12)


def test_metrics_reject_bad_input():
    with pytest.raises(ValueError, match="0/1"):
        auc([0.1, 0.2], [0, 2])
    with pytest.raises(ValueError, match="entries"):
        auc([0.1, 0.2, 0.3], [0, 1])


def test_task_labels_follow_bitmasks_and_loss_is_weighted_bce():
    config = small_config()
    batch = collate(make_rows(3, seed=8), config)
    labels = task_labels(batch, config.tasks)
    raw = batch.labels
    assert labels[:, 0].tolist() == [float(a & 1 > 0) for a in raw.tolist()]
    assert labels[:, 1].tolist() == [float(a & 2 > 0) for a in raw.tolist()]
    logits = torch.randn(batch.num_candidates, 2, requires_grad=True)
    total, per_task = multitask_loss(logits, batch, config.tasks)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels, reduction="none").mean(0)
    torch.testing.assert_close(total, expected.sum())
    torch.testing.assert_close(per_task["is_like"], expected[1].detach())
    with pytest.raises(ValueError, match="expected"):
        multitask_loss(logits[:, :1], batch, config.tasks)
