"""Triton norm_mul / layer_norm_uvqk vs their PyTorch twins: outputs and every gradient (fp32)."""

from __future__ import annotations

import pytest
import torch
from kernel_inputs import DEVICE

from kernels import layer_norm_uvqk, norm_mul, output_projection


def _randn(*shape, seed):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).to(DEVICE).requires_grad_()


def _grads(out, inputs, seed):
    outs = out if isinstance(out, tuple) else (out,)
    grads = [torch.randn(o.shape, generator=torch.Generator().manual_seed(seed + i)).to(DEVICE)
             for i, o in enumerate(outs)]
    return torch.autograd.grad(outs, inputs, grads)


@pytest.mark.parametrize("use_group_norm", [True, False])
def test_norm_mul_matches_twin(use_group_norm):
    rows, heads, dim_v = 37, 3, 24
    uvqk = _randn(rows, 4 * heads * dim_v, seed=1)
    o = _randn(rows, heads * dim_v, seed=2)
    u = uvqk[:, : heads * dim_v]  # a strided view, as the uvqk split hands it over
    weight, bias = _randn(heads * dim_v, seed=3), _randn(heads * dim_v, seed=4)
    inputs = (o, uvqk, weight, bias)
    results = []
    for backend in ("triton", "pytorch"):
        y = norm_mul(o, u, weight, bias, num_heads=heads, use_group_norm=use_group_norm, backend=backend)
        results.append((y, _grads(y, inputs, seed=5)))
    (y, grads), (ref, ref_grads) = results
    torch.testing.assert_close(y, ref, rtol=1e-4, atol=1e-5)
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_layer_norm_uvqk_matches_twin():
    rows, dim, split_sizes = 29, 48, [16, 16, 8, 8]
    x = _randn(rows, dim, seed=1)
    ln_weight, ln_bias = _randn(dim, seed=2), _randn(dim, seed=3)
    weight, bias = _randn(dim, sum(split_sizes), seed=4), _randn(sum(split_sizes), seed=5)
    inputs = (x, ln_weight, ln_bias, weight, bias)
    results = []
    for backend in ("triton", "pytorch"):
        outs = layer_norm_uvqk(x, ln_weight, ln_bias, weight, bias, split_sizes=split_sizes, backend=backend)
        assert [o.shape for o in outs] == [(rows, s) for s in split_sizes]
        results.append((outs, _grads(outs, inputs, seed=6)))
    (outs, grads), (refs, ref_grads) = results
    for got, want in zip((*outs, *grads), (*refs, *ref_grads)):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_norm_mul_empty_rows():
    o = torch.zeros(0, 8, device=DEVICE, requires_grad=True)
    y = norm_mul(o, o, torch.ones(8, device=DEVICE), torch.zeros(8, device=DEVICE), num_heads=2,
                 use_group_norm=True)
    assert y.shape == (0, 8)


def test_output_projection_adds_the_residual():
    rows, width, dim = 5, 6, 4
    u, o, y = (_randn(rows, width, seed=s) for s in (1, 2, 3))
    x = _randn(rows, dim, seed=4)
    weight, bias = _randn(3 * width, dim, seed=5), _randn(dim, seed=6)
    out = output_projection(u, o, y, x, weight, bias)
    torch.testing.assert_close(out, x + torch.cat([u, o, y], -1) @ weight + bias)
    with pytest.raises(ValueError, match="width"):
        output_projection(u, o, y, x, weight[1:], bias)
