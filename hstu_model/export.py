"""Inference export: DlrmHSTU behind a forward of plain tensors (jagged values + offsets), for torch.export.

``InferenceModule.forward`` takes, in order (B samples, U history events, C candidates):

    contextual_ids      int64 [B, K]     table rows (IdRows), one column per contextual feature (config order)
    uih_offsets         int64 [B+1]
    uih_ids             int64 [U, Fu]    table rows, one column per uih feature
    uih_action          int64 [U]
    uih_watchtime       float32 [U]
    uih_timestamp       int64 [U]
    candidate_offsets   int64 [B+1]
    candidate_ids       int64 [C, Fc]
    candidate_timestamp int64 [C]
    candidate_counts    int64 [C, 9]     only for a model that reads item counters (ModelConfig.item_counters)

and returns logits ``[C, num_tasks]``. ``inference_inputs(batch)`` gives these tensors from an ``HstuBatch``.
The model runs in eval mode; the exported program has dynamic B, U and C. Export a model built with
``kernel: PYTORCH`` (a TRITON-built model's state_dict loads into it unchanged): the Triton kernels are not
traceable by torch.export. Unsharded TorchRec tables are looked up directly while exporting (same rows).
"""

from __future__ import annotations

import torch
from torch import nn

from hstu_model.batch import HstuBatch
from hstu_model.model import DlrmHSTU


def inference_inputs(batch: HstuBatch) -> tuple[torch.Tensor, ...]:
    """The plain-tensor inputs of ``InferenceModule`` for ``batch`` (order as in the module docstring)."""
    return (
        torch.stack(list(batch.contextual.values()), dim=1),
        batch.uih_offsets,
        torch.stack(list(batch.uih_ids.values()), dim=1),
        batch.uih_action,
        batch.uih_watchtime,
        batch.uih_timestamp,
        batch.candidate_offsets,
        torch.stack(list(batch.candidate_ids.values()), dim=1),
        batch.candidate_timestamp,
    ) + ((batch.candidate_counts,) if batch.candidate_counts is not None else ())


class InferenceModule(nn.Module):
    """Wraps a trained ``DlrmHSTU``: plain tensors in, logits ``[C, num_tasks]`` out."""

    def __init__(self, model: DlrmHSTU):
        super().__init__()
        self.model = model.eval()
        groups = model.config.feature_groups
        self.contextual, self.uih, self.candidate = groups.contextual, groups.uih, groups.candidate

    def forward(self, contextual_ids: torch.Tensor, uih_offsets: torch.Tensor, uih_ids: torch.Tensor,
                uih_action: torch.Tensor, uih_watchtime: torch.Tensor, uih_timestamp: torch.Tensor,
                candidate_offsets: torch.Tensor, candidate_ids: torch.Tensor,
                candidate_timestamp: torch.Tensor, candidate_counts: torch.Tensor | None = None) -> torch.Tensor:
        batch = HstuBatch(
            contextual={f: contextual_ids[:, i] for i, f in enumerate(self.contextual)},
            uih_ids={f: uih_ids[:, i] for i, f in enumerate(self.uih)},
            uih_action=uih_action, uih_watchtime=uih_watchtime, uih_timestamp=uih_timestamp,
            uih_lengths=uih_offsets[1:] - uih_offsets[:-1],
            candidate_ids={f: candidate_ids[:, i] for i, f in enumerate(self.candidate)},
            candidate_timestamp=candidate_timestamp,
            candidate_lengths=candidate_offsets[1:] - candidate_offsets[:-1],
            labels=None, watch_time=None,
            user_ids=candidate_timestamp,  # unused by the model
            candidate_counts=candidate_counts,
        )
        return self.model(batch)


def export_model(model: DlrmHSTU, example: HstuBatch) -> torch.export.ExportedProgram:
    """``torch.export`` of ``InferenceModule(model)`` with dynamic batch, history and candidate sizes.

    Call ``.module()(*inference_inputs(batch))`` on the result to predict; ``torch.export.save/load`` persist it.
    Puts ``model`` in eval mode.

    Raises:
        ValueError: the model was built with the Triton kernels.
    """
    if model.backend != "pytorch":
        raise ValueError(f"export_model: the model uses the {model.backend!r} kernels, which torch.export cannot "
                         "trace; build it with kernel PYTORCH and load this model's state_dict into it")
    module = InferenceModule(model)
    batch, hist, cand = torch.export.Dim("batch"), torch.export.Dim("history"), torch.export.Dim("candidates")
    shapes = ({0: batch}, {0: batch + 1}, {0: hist}, {0: hist}, {0: hist}, {0: hist}, {0: batch + 1},
              {0: cand}, {0: cand}) + (({0: cand},) if example.candidate_counts is not None else ())
    with torch.no_grad():
        return torch.export.export(module, inference_inputs(example), dynamic_shapes=shapes, strict=False)
