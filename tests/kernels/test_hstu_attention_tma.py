"""hstu_attention's TMA loads (tensor descriptors, `TMA_FORWARD` / `TMA_BACKWARD`) against the PyTorch twin.

On CPU the interpreter runs the descriptor loads too (forced on), which checks the kernels' block bookkeeping: only
blocks inside the sequence may come through a descriptor, since a box past a sequence's end reads the next
sequence's rows. The GPU tests check the bulk tensor copies themselves in bf16, every mask, with the launch
configurations autotune picks at long lengths.
"""

from __future__ import annotations

import importlib

import pytest
import torch
import triton
from kernel_inputs import DEVICE, attention_inputs, compare_with_twin, offsets_of

from kernels import hstu_attention
from kernels.hstu_attention import launch_config
from kernels.hstu_attention_ref import hstu_attention_ref

hstu_module = importlib.import_module("kernels.hstu_attention")  # the package exports a function of that name

pytestmark = pytest.mark.skipif(hstu_module.TensorDescriptor is None, reason="Triton without tensor descriptors")

LENGTHS = [5, 0, 1, 37, 200, 130]
MAX_LEN = 200
MASKS = {
    "causal": {},
    "candidates_and_context": {"num_targets": torch.tensor([2, 0, 1, 30, 70, 9]), "contextual_len": 3},
    "query_time": {"num_targets": torch.tensor([2, 0, 1, 30, 70, 90]), "contextual_len": 3, "query_time": True},
    "window": {"num_targets": torch.tensor([1, 0, 1, 4, 9, 3]), "max_attn_len": 40, "scaling_seqlen": 50},
}


@pytest.fixture
def tma_on(monkeypatch):
    """TMA loads forced on; yields the USE_TMA flags of the launches (forward and backward)."""
    monkeypatch.setattr(hstu_module, "TMA_FORWARD", True)
    monkeypatch.setattr(hstu_module, "TMA_BACKWARD", True)
    used = []
    real = hstu_module._descriptors

    def spy(use, **tensors):
        used.append(use)
        return real(use, **tensors)

    monkeypatch.setattr(hstu_module, "_descriptors", spy)
    return used


@pytest.mark.parametrize("mask", sorted(MASKS))
def test_tma_loads_match_the_twin_fp32(tma_on, mask):
    compare_with_twin(MASKS[mask], lengths=LENGTHS, max_len=MAX_LEN, heads=2, dim_qk=32, dim_v=64)
    assert tma_on == [True, True]  # one forward, one backward, both through descriptors


@pytest.mark.skipif(DEVICE == "cuda", reason="the fixed launch config is the interpreter's; CUDA autotunes")
@pytest.mark.parametrize(("block_m", "block_n"), [(16, 32), (32, 16)])
def test_tma_loads_match_the_twin_with_other_blocks(tma_on, block_m, block_n):
    small = triton.Config({"BLOCK_M": block_m, "BLOCK_N": block_n}, num_warps=4, num_stages=1)
    with launch_config(forward=small, backward=small):
        compare_with_twin(MASKS["candidates_and_context"], lengths=LENGTHS, max_len=MAX_LEN, heads=1, dim_qk=16,
                          dim_v=32)
    assert tma_on == [True, True]


def test_strided_heads_read_through_descriptors(tma_on):
    # q, k, v as [L, H, D] views with a head stride larger than D ([L, H, 3, D] buffer) and rows of 3 H D.
    gen = torch.Generator().manual_seed(5)
    offsets = offsets_of(LENGTHS, DEVICE)
    packed = torch.randn(int(offsets[-1]), 2, 3, 32, generator=gen).to(DEVICE).requires_grad_()
    q, k, v = packed.unbind(2)
    assert q.stride(1) == 96
    kwargs = MASKS["candidates_and_context"]
    kwargs = {name: (x.to(DEVICE) if isinstance(x, torch.Tensor) else x) for name, x in kwargs.items()}
    out = hstu_attention(q, k, v, offsets, MAX_LEN, alpha=0.25, **kwargs)
    ref = hstu_attention_ref(q, k, v, offsets, MAX_LEN, alpha=0.25, **kwargs)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    (grad,) = torch.autograd.grad(out.square().sum(), packed)
    (ref_grad,) = torch.autograd.grad(ref.square().sum(), packed)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-4, atol=1e-5)
    assert tma_on == [True, True]


def test_layouts_a_descriptor_cannot_read_take_the_pointer_loads(tma_on):
    q, k, v, offsets = attention_inputs([5, 40], 1, 16, 24, seed=2, device=DEVICE)  # Dv = 24: not a power of two
    out = hstu_attention(q, k, v, offsets, 40, alpha=0.5)
    torch.testing.assert_close(out, hstu_attention_ref(q, k, v, offsets, 40, alpha=0.5), rtol=1e-4, atol=1e-5)
    assert tma_on == [False]
    assert not hstu_module._tma_fits(torch.empty(4, 2, 16)[:, :, :8])  # D = 8: a 16-byte box is the least
    assert not hstu_module._tma_fits(torch.empty(4 * 2 * 16 + 1)[1:].view(4, 2, 16))  # 4 bytes off alignment


def test_automatic_choice_is_off_without_a_hopper_gpu(monkeypatch):
    q = torch.empty(4, 2, 64)
    assert not hstu_module._use_tma(None, q)  # a CPU tensor: never automatically
    assert hstu_module._use_tma(True, q)
    assert not hstu_module._use_tma(False, q)


# ----------------------------------------------------------------------------------------------- GPU

def _rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    return ((got.double() - want.double()).norm() / want.double().norm().clamp_min(1e-30)).item()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("mask", sorted(MASKS))
@pytest.mark.parametrize("forward", ["256,64,8,3", "128,64,8,3"])
def test_tma_bf16_error_within_twice_the_twins_on_gpu(monkeypatch, mask, forward):
    """bf16 TMA path vs the twin's fp32 (bound: as test_hstu_attention's bf16 tests), and vs the pointer path."""
    m, n, w, s = (int(x) for x in forward.split(","))
    configs = {"forward": triton.Config({"BLOCK_M": m, "BLOCK_N": n}, num_warps=w, num_stages=s),
               "backward": triton.Config({"BLOCK_M": 64, "BLOCK_N": 64}, num_warps=4, num_stages=2)}
    lengths = [1, 300, 777, 64, 1500, 1024]
    kwargs = dict(MASKS[mask])
    if "num_targets" in kwargs:
        kwargs["num_targets"] = torch.tensor([1, 40, 100, 64, 150, 7])
    kwargs = {name: (x.cuda() if isinstance(x, torch.Tensor) else x) for name, x in kwargs.items()}
    q32, k32, v32, offsets = attention_inputs(lengths, 2, 128, 128, seed=7, device="cuda")
    grad = torch.randn(q32.shape[0], 2, 128, device="cuda")
    ref_out = hstu_attention_ref(q32, k32, v32, offsets, 1500, alpha=128 ** -0.5, **kwargs)
    ref = [ref_out, *torch.autograd.grad(ref_out, (q32, k32, v32), grad)]
    runs = {}
    for name, fn, tma in (("twin", hstu_attention_ref, False), ("pointer", hstu_attention, False),
                          ("tma", hstu_attention, True)):
        monkeypatch.setattr(hstu_module, "TMA_FORWARD", tma)
        monkeypatch.setattr(hstu_module, "TMA_BACKWARD", tma)
        q, k, v = (t.detach().bfloat16().requires_grad_() for t in (q32, k32, v32))
        with launch_config(**configs):
            out = fn(q, k, v, offsets, 1500, alpha=128 ** -0.5, **kwargs)
            runs[name] = [out, *torch.autograd.grad(out, (q, k, v), grad.bfloat16())]
    for i, part in enumerate(["out", "dq", "dk", "dv"]):
        twins = _rel_err(runs["twin"][i], ref[i])
        bound = (2.0 if i == 0 else 5.0) * max(twins, 1e-3)
        for path in ("pointer", "tma"):
            ours = _rel_err(runs[path][i], ref[i])
            assert ours <= bound, f"{forward} {mask} {part}: {path} bf16 error {ours:.2e} > {bound:.2e}"
        # The same tiles and products as the pointer path: equal up to the accumulation order of one product.
        assert _rel_err(runs["tma"][i], runs["pointer"][i]) <= 1e-2, f"{forward} {mask} {part}: TMA vs pointers"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_autotuned_tma_launches_fit_their_descriptors_on_gpu(monkeypatch):
    """Autotune (its configurations' pre_hook sets the boxes), then the jitted kernel, then the compiled binary
    (`_launch` sets the boxes): the three launches agree bit for bit and match the pointer path. Short autotune
    lists keep the compiles few."""
    from kernels.backend import LazyKernel

    fwd, bwd = hstu_module._FWD, hstu_module._BWD
    monkeypatch.setattr(hstu_module, "_FWD", LazyKernel(fwd.fn, hstu_module._configs([(256, 64, 8, 3),
                                                                                      (128, 64, 8, 3)]),
                                                        fwd.key, fwd.helpers))
    monkeypatch.setattr(hstu_module, "_BWD", LazyKernel(bwd.fn, hstu_module._configs([(64, 64, 4, 2), (64, 32, 4, 2)]),
                                                        bwd.key, bwd.helpers))
    monkeypatch.setattr(hstu_module, "_TUNED", {})
    monkeypatch.setattr(hstu_module, "_COMPILED", {})
    q, k, v, offsets = attention_inputs([300, 1777, 64, 1024], 4, 128, 128, seed=3, dtype=torch.bfloat16,
                                        device="cuda")
    grad = torch.randn_like(q)
    targets = torch.tensor([3, 100, 0, 50], device="cuda")

    def run(tma):
        monkeypatch.setattr(hstu_module, "TMA_FORWARD", tma)
        monkeypatch.setattr(hstu_module, "TMA_BACKWARD", tma)
        out = hstu_attention(q, k, v, offsets, 1777, alpha=0.125, num_targets=targets, check_lengths=False)
        return [out, *torch.autograd.grad(out, (q, k, v), grad)]

    pointer = [run(False) for _ in range(3)]
    tma = [run(None) for _ in range(3)]  # None: automatic, on for a Hopper GPU
    if torch.cuda.get_device_capability()[0] >= 9:
        # The forward's tuned keys end with its flags' last, USE_TMA.
        assert [key[-1] for key in hstu_module._TUNED if key[0] is hstu_module._FWD] == [False, True]
    assert len(hstu_module._COMPILED) == 6  # forward, dK/dV, dQ, each with and without TMA
    for later in tma[1:]:
        for a, b in zip(tma[0], later):
            assert torch.equal(a, b)
    for i, (a, b) in enumerate(zip(tma[2], pointer[2])):
        assert _rel_err(a, b) <= 1e-2, f"{['out', 'dq', 'dk', 'dv'][i]}: autotuned TMA vs pointers"
