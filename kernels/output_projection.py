"""The STU output projection: out = x + Dropout(cat([u, o, y]) @ weight + bias) (docs/design.md §5).

PyTorch only, with no `backend` argument: the cost is one cuBLAS matmul ([L, 3*H*Dv] x [3*H*Dv, D]) that Triton would
not beat, and torch's dropout keeps the RNG stream of the rest of the model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def output_projection(
    u: torch.Tensor,
    o: torch.Tensor,
    y: torch.Tensor,
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    *,
    dropout_p: float = 0.0,
    training: bool = False,
) -> torch.Tensor:
    """out = x + Dropout(cat([u, o, y], -1) @ weight + bias).

    Args:
        u, o, y: [L, H*Dv]; x: [L, D]; weight: [3*H*Dv, D]; bias: [D].

    Returns:
        [L, D].
    """
    joined = torch.cat([u, o, y], dim=-1)  # [L, 3*H*Dv]
    if joined.shape[-1] != weight.shape[0]:
        raise ValueError(f"output_projection: cat([u, o, y]) has width {joined.shape[-1]}, weight expects "
                         f"{weight.shape[0]} rows")
    return x + F.dropout(torch.addmm(bias, joined, weight), p=dropout_p, training=training)
