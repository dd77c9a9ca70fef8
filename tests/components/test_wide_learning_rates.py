"""The wide part's own learning rates (train_config.id_bias_lr / summary_wide_lr, docs/design.md §5): each
reaches its own optimizer group, scaled by warm-up like every other rate, and the rest keeps the shared ones."""

from __future__ import annotations

import torch

from components.training.train_loop import Trainer
from tests.components.train_data import small_config


def test_id_bias_tables_and_the_summary_term_learn_at_their_own_rates(tmp_path):
    config = small_config(tmp_path, extra="id_bias_lr: 0.4 summary_wide_lr: 0.02")
    trainer = Trainer(config, torch.device("cpu"), 0, 1, "test")
    factor = trainer._set_lr(4)  # inside warm-up (10 steps)
    assert factor == 0.5
    sparse = {name: opt.param_groups[0]["lr"] for name, opt in trainer._sparse_optimizers().items()}
    bias = {n: lr for n, lr in sparse.items() if n.startswith("id_bias.")}
    others = {n: lr for n, lr in sparse.items() if not n.startswith("id_bias.")}
    assert bias and others
    assert set(bias.values()) == {0.4 * factor} and set(others.values()) == {0.05 * factor}
    wide = {id(p) for p in trainer.model.tower.summary_wide.parameters()}
    groups = trainer.dense.param_groups
    assert [g["lr"] for g in groups] == [0.003 * factor, 0.02 * factor]
    assert {id(p) for p in groups[1]["params"]} == wide and not wide & {id(p) for p in groups[0]["params"]}


def test_without_them_every_table_and_dense_weight_shares_one_rate(tmp_path):
    trainer = Trainer(small_config(tmp_path), torch.device("cpu"), 0, 1, "test")
    trainer._set_lr(100)
    assert {o.param_groups[0]["lr"] for o in trainer._sparse_optimizers().values()} == {0.05}
    assert [g["lr"] for g in trainer.dense.param_groups] == [0.003]
