"""PyTorch twin of `layer_norm_uvqk`: LayerNorm, the uvqk projection, the split and SiLU(u) (docs/design.md §5)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def layer_norm_uvqk_ref(
    x: torch.Tensor,
    ln_weight: torch.Tensor,
    ln_bias: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    *,
    split_sizes: list[int],
    eps: float = 1e-6,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """u, v, q, k = split(LayerNorm(x) @ weight + bias); u = SiLU(u).

    Args:
        x: [L, D]; ln_weight, ln_bias: [D]; weight: [D, sum(split_sizes)]; bias: [sum(split_sizes)].

    Returns:
        u, v, q, k, each [L, split_sizes[i]].
    """
    normed = F.layer_norm(x, (x.shape[-1],), ln_weight, ln_bias, eps)
    uvqk = torch.addmm(bias, normed, weight)  # [L, sum(split_sizes)]
    u, v, q, k = torch.split(uvqk, list(split_sizes), dim=-1)
    return F.silu(u), v, q, k
