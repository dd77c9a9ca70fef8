"""Fusion multi-task tower: one logit per task per candidate (docs/design.md §5).

    item = ItemMLP(content [C, E])                      (Linear, SiLU, Linear, LayerNorm -> [C, D])
    logits = Head(MLP(user [C, D] * item [C, D]))       -> [C, num_tasks]
    with ``history_summary``: Head(MLP([user * item, SummaryMLP(summary [C, 2A + 2])]))  (hstu_model.history_summary)
                              + Wide([log(rates + 0.01), length, in_history])   (a linear term per task)
    with item counters in front of the summary, the wide term reads their rates as logits (``wide_inputs``), and so
    the history's rates when they are shrunk towards a prior (``history_logits``; hstu_model.history_summary)

MLP: per ``hidden_units`` entry ``Linear -> (LayerNorm if use_ln) -> activation -> (Dropout)``.
"""

from __future__ import annotations

import torch
from torch import nn

from hstu_model.config import TowerConfig
from hstu_model.history_summary import HistorySummaryEncoder
from hstu_model.preprocessor import SimpleMlp

_ACTIVATIONS = {"nn.ReLU": nn.ReLU, "nn.SiLU": nn.SiLU, "nn.GELU": nn.GELU, "nn.Tanh": nn.Tanh}


def _mlp(config: TowerConfig, in_dim: int) -> tuple[nn.Sequential, int]:
    if config.activation not in _ACTIVATIONS:
        raise ValueError(f"fusion_mtl_tower.mlp.activation {config.activation!r} is not supported; "
                         f"use one of {sorted(_ACTIVATIONS)}")
    if config.dropout_ratio and len(config.dropout_ratio) not in (1, len(config.hidden_units)):
        raise ValueError(f"fusion_mtl_tower.mlp.dropout_ratio has {len(config.dropout_ratio)} entries; expected "
                         f"1 or one per hidden unit ({len(config.hidden_units)})")
    layers: list[nn.Module] = []
    for i, units in enumerate(config.hidden_units):
        layers.append(nn.Linear(in_dim, units))
        if config.use_ln:
            layers.append(nn.LayerNorm(units))
        layers.append(_ACTIVATIONS[config.activation]())
        if config.dropout_ratio:
            p = config.dropout_ratio[i if len(config.dropout_ratio) > 1 else 0]
            if p > 0:
                layers.append(nn.Dropout(p))
        in_dim = units
    return nn.Sequential(*layers), in_dim


class FusionMtlTower(nn.Module):
    """User-side candidate encoding x item-side encoding -> MLP -> ``[C, num_tasks]`` logits."""

    def __init__(self, config: TowerConfig, width: int, content_dim: int, item_hidden_dim: int, num_tasks: int,
                 num_actions: int, side_match: bool = False, counters: int = 0, history_logits: bool = False):
        super().__init__()
        self.item_mlp = SimpleMlp(content_dim, item_hidden_dim, width)
        self.summary = (HistorySummaryEncoder(num_actions, width, side_match, counters) if config.history_summary
                        else None)
        self.counter_columns = counters  # the summary's first columns: item counter rates, then their volume
        # The summary's history rates are shrunk towards the pooled rate (never 0 or 1): the wide term reads logits.
        self.history_logits, self.num_actions = history_logits, num_actions
        self.mlp, out_dim = _mlp(config, 2 * width if self.summary is not None else width)
        self.head = nn.Linear(out_dim, num_tasks)
        # The wide term: each task's logit moves linearly with the log of the user's action rates, as a logistic
        # regression on them would. Starts at zero, so an untrained tower predicts what it did without it.
        self.summary_wide = nn.Linear(self.summary.input_dim, num_tasks) if self.summary is not None else None
        if self.summary_wide is not None:
            nn.init.zeros_(self.summary_wide.weight)
            nn.init.zeros_(self.summary_wide.bias)

    def forward(self, user: torch.Tensor, item_content: torch.Tensor,
                summary: torch.Tensor | None = None) -> torch.Tensor:
        """``user [C, D]``, ``item_content [C, E]``, ``summary [C, 2A + 2]`` (with history_summary) -> ``[C, T]``."""
        x = user * self.item_mlp(item_content)
        if self.summary is not None:
            x = torch.cat([x, self.summary(summary)], dim=1)  # [C, 2D]
        logits = self.head(self.mlp(x))
        if getattr(self, "summary_wide", None) is not None:  # versions pickled before the wide term lack it
            logits = logits + self.summary_wide(self.wide_inputs(summary))
        return logits

    def wide_inputs(self, summary: torch.Tensor) -> torch.Tensor:
        """What the wide term reads: the item counters' rates as logits (a logistic regression on them is what
        ranks best, QUALITY_NOTES.md §16) and their volume, then the log of the match shares and of the history's
        rates (their logits when shrunk, §17), then length and in_history as they are."""
        counters = getattr(self, "counter_columns", 0)  # versions pickled before the counters lack it
        rates = summary.shape[1] - 2
        # versions pickled before the shrunk history rates read log(rate + 0.01) of every rate and share
        logit_from = rates - 2 * self.num_actions if getattr(self, "history_logits", False) else rates
        return torch.cat([_logit(summary[:, :max(counters - 1, 0)]), summary[:, max(counters - 1, 0):counters],
                          torch.log(summary[:, counters:logit_from] + 0.01), _logit(summary[:, logit_from:rates]),
                          summary[:, rates:]], dim=1)


def _logit(rates: torch.Tensor) -> torch.Tensor:
    rates = rates.clamp(1e-4, 1 - 1e-4)
    return torch.log(rates / (1 - rates))
