"""DlrmHSTU (HSTU ranking model, arXiv 2402.17152) in PyTorch + TorchRec over jagged user-window samples.

Reads in forward order: ``config`` (the spec block as dataclasses), ``batch`` (jagged batch + collate),
``embeddings`` (TorchRec tables), ``preprocessor``, ``positional``, ``stu``, ``postprocess``, ``tower``, then
``model`` (``build_model``). ``losses`` and ``metrics`` sit apart: the model returns logits. ``export`` wraps
the model for ``torch.export``; ``summary`` counts parameters. docs/design.md §5 gives the semantics.

Names are imported lazily, so ``import hstu_model.config`` (config parsing) does not load torch or TorchRec.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "DlrmHSTU": "model", "build_model": "model", "HstuBatch": "batch", "collate": "batch",
    "ModelConfig": "config", "export_model": "export", "inference_inputs": "export",
    "multitask_loss": "losses", "task_labels": "losses", "auc": "metrics", "grouped_auc": "metrics",
    "summarize_model": "summary",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'hstu_model' has no attribute {name!r}")
    return getattr(importlib.import_module(f"hstu_model.{_HOMES[name]}"), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
