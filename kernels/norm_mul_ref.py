"""PyTorch twin of `norm_mul`: y = u * Norm(o), group norm per head or layer norm (docs/design.md §5)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def norm_mul_ref(
    o: torch.Tensor,
    u: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    *,
    num_heads: int,
    use_group_norm: bool,
    eps: float = 1e-6,
) -> torch.Tensor:
    """y = u * (Norm(o) * weight + bias).

    Args:
        o, u: [L, H*Dv]; weight, bias: [H*Dv]. Norm is over each head's Dv slice (group norm) or over all H*Dv.

    Returns:
        y: [L, H*Dv].
    """
    rows, width = o.shape
    if use_group_norm:
        per_head = o.view(rows, num_heads, width // num_heads)  # [L, H, Dv]
        normed = F.layer_norm(per_head, (width // num_heads,), eps=eps).view(rows, width)
        normed = normed * weight + bias
    else:
        normed = F.layer_norm(o, (width,), weight, bias, eps)
    return u * normed
