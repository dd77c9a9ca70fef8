"""LayerNorm + uvqk projection + SiLU(u) of the STU layer (docs/design.md §5), on jagged token values [L, D].

Triton path: the Triton group-norm kernel (one group = LayerNorm; mean, rstd kept for backward) normalises
each row, cuBLAS does the projection, torch applies SiLU to the u slice. The matmul dominates; fusing the norm
into its prologue is left for later.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kernels.backend import check_backend
from kernels.group_norm import group_norm_mul_triton
from kernels.layer_norm_uvqk_ref import layer_norm_uvqk_ref


def _validate(x, ln_weight, ln_bias, weight, bias, split_sizes) -> None:
    if x.dim() != 2:
        raise ValueError(f"layer_norm_uvqk: x must be [L, D], got {tuple(x.shape)}")
    dim = x.shape[1]
    if ln_weight.shape != (dim,) or ln_bias.shape != (dim,):
        raise ValueError(f"layer_norm_uvqk: ln_weight/ln_bias must be [{dim}], got {tuple(ln_weight.shape)}, "
                         f"{tuple(ln_bias.shape)}")
    if len(split_sizes) != 4:
        raise ValueError(f"layer_norm_uvqk: split_sizes must list 4 sizes (u, v, q, k), got {split_sizes}")
    width = sum(split_sizes)
    if weight.shape != (dim, width) or bias.shape != (width,):
        raise ValueError(f"layer_norm_uvqk: weight must be [{dim}, {width}] and bias [{width}], got "
                         f"{tuple(weight.shape)}, {tuple(bias.shape)}")


def layer_norm_uvqk(
    x: torch.Tensor,
    ln_weight: torch.Tensor,
    ln_bias: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    *,
    split_sizes: list[int],
    eps: float = 1e-6,
    backend: str = "triton",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """u, v, q, k = split(LayerNorm(x) * ln_weight + ln_bias) @ weight + bias); u = SiLU(u).

    Args:
        x: [L, D]; ln_weight, ln_bias: [D]; weight: [D, sum(split_sizes)]; bias: [sum(split_sizes)];
        split_sizes: widths of (u, v, q, k), e.g. (H*Dv, H*Dv, H*Dqk, H*Dqk).

    Returns:
        u, v, q, k as 2-D [L, split_sizes[i]] (views of one [L, sum] buffer, except u).
    """
    _validate(x, ln_weight, ln_bias, weight, bias, split_sizes)
    if not check_backend(backend, "layer_norm_uvqk", x.device):
        return layer_norm_uvqk_ref(x, ln_weight, ln_bias, weight, bias, split_sizes=split_sizes, eps=eps)
    return _layer_norm_uvqk_triton(x, ln_weight, ln_bias, weight, bias, split_sizes, eps)


def _layer_norm_uvqk_triton(x, ln_weight, ln_bias, weight, bias, split_sizes, eps):
    normed = group_norm_mul_triton(x, None, ln_weight, ln_bias, 1, eps)  # Triton LayerNorm, [L, D]
    uvqk = torch.addmm(bias, normed, weight)  # cuBLAS, [L, sum(split_sizes)]
    u, v, q, k = torch.split(uvqk, list(split_sizes), dim=-1)
    return F.silu(u), v, q, k
