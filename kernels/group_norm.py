"""Triton affine group norm over the rows of a [L, G * groups] tensor, optionally times u (y = u * Norm(x)).

Shared by `norm_mul` (group norm per head, or one group = layer norm) and `layer_norm_uvqk` (layer norm, no
u). Forward keeps mean and rstd [L, groups]; backward recomputes x_hat, writes dx (and du), and per row-block
partial sums of the affine gradients that torch sums afterwards: deterministic, no atomics.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels.backend import LazyKernel


def _group_norm_fwd_kernel(
    X, U, W, B, Y, MEAN, RSTD, rows, stride_x, stride_u, stride_y, group, groups, eps,
    HAS_U: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_G: tl.constexpr,
):
    pid_r = tl.program_id(0)
    g = tl.program_id(1)  # one group (head slice) per program column
    offs_r = pid_r * BLOCK_R + tl.arange(0, BLOCK_R)
    offs_c = tl.arange(0, BLOCK_G)
    mask = (offs_r[:, None] < rows) & (offs_c[None, :] < group)
    col = g * group + offs_c
    x = tl.load(X + offs_r[:, None].to(tl.int64) * stride_x + col[None, :], mask=mask, other=0.0).to(tl.float32)
    mean = tl.sum(x, axis=1) / group
    xc = tl.where(mask, x - mean[:, None], 0.0)
    rstd = 1.0 / tl.sqrt(tl.sum(xc * xc, axis=1) / group + eps)
    w = tl.load(W + col, mask=offs_c < group, other=0.0).to(tl.float32)
    b = tl.load(B + col, mask=offs_c < group, other=0.0).to(tl.float32)
    y = xc * rstd[:, None] * w[None, :] + b[None, :]
    if HAS_U:
        u = tl.load(U + offs_r[:, None].to(tl.int64) * stride_u + col[None, :], mask=mask, other=0.0)
        y = y * u.to(tl.float32)
    tl.store(Y + offs_r[:, None].to(tl.int64) * stride_y + col[None, :], y.to(Y.dtype.element_ty), mask=mask)
    tl.store(MEAN + offs_r * groups + g, mean, mask=offs_r < rows)
    tl.store(RSTD + offs_r * groups + g, rstd, mask=offs_r < rows)


def _group_norm_bwd_kernel(
    X, U, W, B, DY, MEAN, RSTD, DX, DU, DW_PART, DB_PART, rows, stride_x, stride_u, stride_dy, group, groups,
    HAS_U: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_G: tl.constexpr,
):
    pid_r = tl.program_id(0)
    g = tl.program_id(1)
    width = group * groups
    offs_r = pid_r * BLOCK_R + tl.arange(0, BLOCK_R)
    offs_c = tl.arange(0, BLOCK_G)
    mask = (offs_r[:, None] < rows) & (offs_c[None, :] < group)
    col = g * group + offs_c
    row64 = offs_r[:, None].to(tl.int64)
    x = tl.load(X + row64 * stride_x + col[None, :], mask=mask, other=0.0).to(tl.float32)
    dy = tl.load(DY + row64 * stride_dy + col[None, :], mask=mask, other=0.0).to(tl.float32)
    mean = tl.load(MEAN + offs_r * groups + g, mask=offs_r < rows, other=0.0)
    rstd = tl.load(RSTD + offs_r * groups + g, mask=offs_r < rows, other=0.0)
    w = tl.load(W + col, mask=offs_c < group, other=0.0).to(tl.float32)
    b = tl.load(B + col, mask=offs_c < group, other=0.0).to(tl.float32)
    x_hat = tl.where(mask, (x - mean[:, None]) * rstd[:, None], 0.0)
    dn = dy  # gradient w.r.t. the affine output
    if HAS_U:
        u = tl.load(U + row64 * stride_u + col[None, :], mask=mask, other=0.0).to(tl.float32)
        tl.store(DU + row64 * width + col[None, :], (dy * (x_hat * w[None, :] + b[None, :])).to(DU.dtype.element_ty),
                 mask=mask)
        dn = dy * u
    tl.store(DW_PART + pid_r * width + col, tl.sum(dn * x_hat, axis=0), mask=offs_c < group)
    tl.store(DB_PART + pid_r * width + col, tl.sum(dn, axis=0), mask=offs_c < group)
    dx_hat = dn * w[None, :]
    c1 = tl.sum(dx_hat * x_hat, axis=1) / group
    c2 = tl.sum(dx_hat, axis=1) / group
    dx = (dx_hat - x_hat * c1[:, None] - c2[:, None]) * rstd[:, None]
    tl.store(DX + row64 * width + col[None, :], dx.to(DX.dtype.element_ty), mask=mask)


_FWD = LazyKernel(_group_norm_fwd_kernel)
_BWD = LazyKernel(_group_norm_bwd_kernel)


def _blocks(rows: int, group: int) -> tuple[int, int, int]:
    """(BLOCK_R, BLOCK_G, number of row blocks): ~4k elements per program."""
    block_g = triton.next_power_of_2(group)
    block_r = max(1, min(64, 4096 // block_g, triton.next_power_of_2(max(rows, 1))))
    return block_r, block_g, triton.cdiv(rows, block_r)


def _row_major(t: torch.Tensor) -> torch.Tensor:
    return t if t.stride(-1) == 1 else t.contiguous()


class _GroupNormMul(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, u, weight, bias, groups, eps):
        x = _row_major(x)
        u = _row_major(u) if u is not None else None
        rows, width = x.shape
        group = width // groups
        y = torch.empty((rows, width), dtype=x.dtype, device=x.device)
        mean = torch.empty((rows, groups), dtype=torch.float32, device=x.device)
        rstd = torch.empty_like(mean)
        block_r, block_g, n_blocks = _blocks(rows, group)
        _FWD.get(False)[(n_blocks, groups)](
            x, u if u is not None else x, weight, bias, y, mean, rstd, rows, x.stride(0),
            u.stride(0) if u is not None else 0, y.stride(0), group, groups, eps,
            HAS_U=u is not None, BLOCK_R=block_r, BLOCK_G=block_g, num_warps=4)
        ctx.save_for_backward(x, u, weight, bias, mean, rstd)
        ctx.groups = groups
        return y

    @staticmethod
    def backward(ctx, dy):
        x, u, weight, bias, mean, rstd = ctx.saved_tensors
        dy = _row_major(dy)
        rows, width = x.shape
        group = width // ctx.groups
        block_r, block_g, n_blocks = _blocks(rows, group)
        dx = torch.empty((rows, width), dtype=x.dtype, device=x.device)
        du = torch.empty_like(dx) if u is not None else None
        dw_part = torch.empty((n_blocks, width), dtype=torch.float32, device=x.device)
        db_part = torch.empty_like(dw_part)
        _BWD.get(False)[(n_blocks, ctx.groups)](
            x, u if u is not None else x, weight, bias, dy, mean, rstd, dx, du if du is not None else dx,
            dw_part, db_part, rows, x.stride(0), u.stride(0) if u is not None else 0, dy.stride(0), group,
            ctx.groups, HAS_U=u is not None, BLOCK_R=block_r, BLOCK_G=block_g, num_warps=4)
        dw = dw_part.sum(0).to(weight.dtype)
        db = db_part.sum(0).to(bias.dtype)
        return dx, du, dw, db, None, None


def group_norm_mul_triton(
    x: torch.Tensor, u: torch.Tensor | None, weight: torch.Tensor, bias: torch.Tensor, groups: int, eps: float
) -> torch.Tensor:
    """(u *) (GroupNorm(x) * weight + bias) for x [L, W] split into `groups` equal slices per row.

    Args:
        x: [L, W]; u: [L, W] or None; weight, bias: [W]; groups divides W.

    Returns:
        [L, W] in the dtype of x.
    """
    if x.shape[0] == 0:
        zero = (x.sum() + weight.sum() + bias.sum()) * 0 + (u.sum() * 0 if u is not None else 0)
        return x.new_zeros(x.shape) + zero
    return _GroupNormMul.apply(x, u, weight, bias, groups, eps)
