"""y = u * Norm(o) of the STU layer (docs/design.md §5): group norm per head or layer norm, affine, times u.

Triton path: one kernel reads o and u once and writes y (mean/rstd kept); the backward kernel writes do, du
and per-block partial sums of the affine gradients, summed afterwards (deterministic, no atomics).
"""

from __future__ import annotations

import torch

from kernels.backend import check_backend
from kernels.group_norm import group_norm_mul_triton
from kernels.norm_mul_ref import norm_mul_ref


def norm_mul(
    o: torch.Tensor,
    u: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    *,
    num_heads: int,
    use_group_norm: bool,
    eps: float = 1e-6,
    backend: str = "triton",
) -> torch.Tensor:
    """y = u * (Norm(o) * weight + bias).

    Args:
        o, u: [L, H*Dv]; weight, bias: [H*Dv]; Norm over each head's Dv slice when use_group_norm, else
        over the whole H*Dv row.

    Returns:
        y: [L, H*Dv].
    """
    if o.dim() != 2 or o.shape != u.shape:
        raise ValueError(f"norm_mul: o and u must both be [L, H*Dv], got {tuple(o.shape)}, {tuple(u.shape)}")
    width = o.shape[1]
    if num_heads < 1 or width % num_heads:
        raise ValueError(f"norm_mul: width {width} is not divisible by num_heads={num_heads}")
    if weight.shape != (width,) or bias.shape != (width,):
        raise ValueError(f"norm_mul: weight/bias must be [{width}], got {tuple(weight.shape)}, {tuple(bias.shape)}")
    if not check_backend(backend, "norm_mul", o.device):
        return norm_mul_ref(o, u, weight, bias, num_heads=num_heads, use_group_norm=use_group_norm, eps=eps)
    return _norm_mul_triton(o, u, weight, bias, num_heads, use_group_norm, eps)


def _norm_mul_triton(o, u, weight, bias, num_heads, use_group_norm, eps):
    return group_norm_mul_triton(o, u, weight, bias, num_heads if use_group_norm else 1, eps)
