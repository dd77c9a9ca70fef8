"""Triton hstu_attention vs its PyTorch twin: outputs and every gradient (interpreter on CPU, bf16 on GPU)."""

from __future__ import annotations

import traceback

import pytest
import torch
from kernel_inputs import DEVICE, attention_inputs, compare_with_twin, offsets_of, run_with_grads

from kernels import hstu_attention
from kernels.hstu_attention import BACKWARD_CONFIGS, FORWARD_CONFIGS, launch_config
from kernels.hstu_attention_ref import dense_mask, hstu_attention_ref

# An empty sequence, length 1, and lengths that are not multiples of any block size.
LENGTHS = [5, 0, 1, 37, 200]
MAX_LEN = 200


def _compare_with_twin(kwargs, heads=2, dim_qk=32, dim_v=48, lengths=LENGTHS, seed=0):
    compare_with_twin(kwargs, lengths=lengths, max_len=MAX_LEN, heads=heads, dim_qk=dim_qk, dim_v=dim_v, seed=seed)


CASES = {
    "causal": {},
    "mixed_candidates": {"num_targets": torch.tensor([2, 0, 1, 5, 0])},
    "all_and_no_candidates": {"num_targets": torch.tensor([5, 0, 1, 0, 200])},
    "contextual_longer_than_history": {"num_targets": torch.tensor([2, 0, 0, 30, 3]), "contextual_len": 9},
    "window": {"max_attn_len": 7},
    "window_with_context_and_candidates": {
        "num_targets": torch.tensor([1, 0, 1, 4, 9]), "contextual_len": 3, "max_attn_len": 5, "scaling_seqlen": 50,
    },
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_triton_matches_twin_fp32(case):
    _compare_with_twin(CASES[case])


@pytest.mark.parametrize(("heads", "dim_qk", "dim_v"), [(1, 64, 64), (3, 16, 24)])
def test_triton_matches_twin_other_dims(heads, dim_qk, dim_v):
    _compare_with_twin({"num_targets": torch.tensor([1, 0, 1, 3, 2]), "contextual_len": 2}, heads, dim_qk, dim_v)


def test_strided_views_from_a_fused_projection():
    # q, k, v as views of one [L, 3, H, D] buffer, as the uvqk split hands them over.
    gen = torch.Generator().manual_seed(3)
    offsets = offsets_of(LENGTHS, DEVICE)
    packed = torch.randn(int(offsets[-1]), 3, 2, 32, generator=gen).to(DEVICE).requires_grad_()
    q, k, v = packed.unbind(1)
    out = hstu_attention(q, k, v, offsets, MAX_LEN, alpha=0.25)
    ref = hstu_attention_ref(q, k, v, offsets, MAX_LEN, alpha=0.25)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    (grad,) = torch.autograd.grad(out.square().sum(), packed)
    (ref_grad,) = torch.autograd.grad(ref.square().sum(), packed)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-4, atol=1e-5)


def test_empty_batch_returns_empty_and_backpropagates():
    q, k, v, offsets = attention_inputs([0, 0], 2, 32, 32, seed=0, device=DEVICE)
    out = hstu_attention(q, k, v, offsets, 8, alpha=0.5)
    assert out.shape == (0, 2, 32)
    out.sum().backward()
    assert q.grad is not None and q.grad.shape == q.shape


def test_mask_matches_hand_worked_case():
    # n=7: 2 contextual (id 0), 3 history (ids 1..3), 2 candidates (id 4); window 2.
    expected = torch.tensor([
        [1, 1, 1, 1, 1, 0, 0],
        [1, 1, 1, 1, 1, 0, 0],
        [1, 1, 1, 0, 0, 0, 0],
        [1, 1, 1, 1, 0, 0, 0],
        [0, 0, 1, 1, 1, 0, 0],
        [0, 0, 0, 1, 1, 1, 0],
        [0, 0, 0, 1, 1, 0, 1],
    ], dtype=torch.bool)
    mask = dense_mask(torch.tensor([7]), 7, torch.tensor([2]), 2, 2)[0]
    assert torch.equal(mask, expected)


QUERY_TIME_CASE = {"num_targets": torch.tensor([2, 0, 1, 20, 64]), "contextual_len": 2, "query_time": True}


@pytest.mark.parametrize("case", [*sorted(CASES), "query_time"])
def test_twin_groups_by_length_as_one_padded_batch_would(case):
    """The twin pads each length group (same power of two) on its own; outputs and gradients must be those of the
    whole batch padded to its longest sequence, for every mask."""
    from kernels.hstu_attention_ref import _padded_attention

    kwargs = dict(CASES.get(case, QUERY_TIME_CASE))
    q, k, v, offsets = attention_inputs(LENGTHS, 2, 16, 24, seed=4, dtype=torch.float64)
    grad = torch.randn(q.shape[0], 2, 24, dtype=torch.float64)
    grouped, grouped_grads = run_with_grads(hstu_attention_ref, q, k, v, offsets, grad, MAX_LEN, **kwargs)

    def padded(q, k, v, offsets, max_len, *, alpha, scaling_seqlen=None, num_targets=None, contextual_len=0,
               max_attn_len=0, query_time=False):
        return _padded_attention(q, k, v, offsets, num_targets, max_len, alpha, scaling_seqlen, contextual_len,
                                 max_attn_len, query_time)

    whole, whole_grads = run_with_grads(padded, q, k, v, offsets, grad, MAX_LEN, **kwargs)
    for a, b in zip([grouped, *grouped_grads], [whole, *whole_grads]):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_twin_gradients_pass_gradcheck():
    q, k, v, offsets = attention_inputs([3, 1, 4], 1, 4, 3, seed=5, dtype=torch.float64)

    def fn(q, k, v):
        return hstu_attention_ref(q, k, v, offsets, 4, alpha=0.7, num_targets=torch.tensor([1, 0, 2]),
                                  contextual_len=1)

    assert torch.autograd.gradcheck(fn, (q, k, v))


def test_a_sample_does_not_depend_on_other_samples():
    q, k, v, offsets = attention_inputs([6, 9], 2, 16, 16, seed=7, device=DEVICE)
    alone = hstu_attention(q[6:], k[6:], v[6:], offsets_of([9], DEVICE), 16, alpha=0.3)
    together = hstu_attention(q, k, v, offsets, 16, alpha=0.3)
    torch.testing.assert_close(together[6:], alone, rtol=1e-5, atol=1e-6)


def test_explicit_triton_without_a_device_raises_with_a_hint(monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the Triton backend can run")
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    q, k, v, offsets = attention_inputs([3], 1, 16, 16, seed=0)
    with pytest.raises(ValueError, match="backend='pytorch'"):
        hstu_attention(q, k, v, offsets, 4, alpha=0.5, backend="triton")


def test_invalid_arguments_are_named():
    q, k, v, offsets = attention_inputs([3], 1, 16, 16, seed=0)
    with pytest.raises(ValueError, match="seq_offsets"):
        hstu_attention(q, k, v, offsets.to(torch.int32), 4, alpha=0.5)
    with pytest.raises(ValueError, match="backend"):
        hstu_attention(q, k, v, offsets, 4, alpha=0.5, backend="cuda")


@pytest.mark.parametrize("backend", ["triton", "pytorch"])
def test_a_sequence_longer_than_max_seq_len_raises(backend):
    # The Triton grid covers max_seq_len rows: a longer sequence would leave rows unwritten, not fail.
    q, k, v, offsets = attention_inputs([3, 7], 1, 16, 16, seed=0, device=DEVICE)
    with pytest.raises(ValueError, match="sequence 1 has 7 tokens, more than max_seq_len=6"):
        hstu_attention(q, k, v, offsets, 6, alpha=0.5, backend=backend)
    assert hstu_attention(q, k, v, offsets, 7, alpha=0.5, backend=backend).shape == v.shape


def test_a_forced_launch_configuration_is_used_and_matches_the_twin():
    import triton

    q, k, v, offsets = attention_inputs([5, 40], 1, 16, 16, seed=3, device=DEVICE)
    small = triton.Config({"BLOCK_M": 16, "BLOCK_N": 32}, num_warps=4, num_stages=1)
    with launch_config(forward=small, backward=small):
        out = hstu_attention(q, k, v, offsets, 40, alpha=0.5, num_targets=torch.tensor([2, 7], device=DEVICE))
    want = hstu_attention_ref(q, k, v, offsets, 40, alpha=0.5, num_targets=torch.tensor([2, 7], device=DEVICE))
    torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-6)
    bad = triton.Config({"BLOCK_M": 16, "BLOCK_N": 24}, num_warps=4, num_stages=1)  # not a power of two
    with pytest.raises(triton.errors.TritonError) as info, launch_config(forward=bad):  # it is launched
        hstu_attention(q, k, v, offsets, 40, alpha=0.5)
    # compiled for a GPU the reason is a cause of the error the launch raises, in the interpreter the error itself
    assert "power of 2" in "".join(traceback.format_exception(info.value))


# ----------------------------------------------------------------------------------------------- GPU

def _max_rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    return ((got.double() - want.double()).norm() / want.double().norm().clamp_min(1e-30)).item()


def _bf16_errors(lengths, heads, dim_qk, dim_v, kwargs, seed=0):
    """Relative errors vs an fp32 reference of (triton bf16, twin bf16), for the output and each gradient."""
    max_len = max(lengths)
    q32, k32, v32, offsets = attention_inputs(lengths, heads, dim_qk, dim_v, seed=seed, device="cuda")
    grad = torch.randn(q32.shape[0], heads, dim_v, device="cuda")
    ref_out = hstu_attention_ref(q32, k32, v32, offsets, max_len, alpha=dim_qk ** -0.5, **kwargs)
    ref = [ref_out, *torch.autograd.grad(ref_out, (q32, k32, v32), grad)]
    errors = {}
    for backend, fn in (("triton", hstu_attention), ("twin", hstu_attention_ref)):
        q, k, v = (t.detach().bfloat16().requires_grad_() for t in (q32, k32, v32))
        out = fn(q, k, v, offsets, max_len, alpha=dim_qk ** -0.5, **kwargs)
        got = [out, *torch.autograd.grad(out, (q, k, v), grad.bfloat16())]
        errors[backend] = [_max_rel_err(g, r) for g, r in zip(got, ref)]
    return errors


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize(("lengths", "heads", "dim_qk", "dim_v", "kwargs"), [
    ([0, 1, 300, 1000, 777], 4, 128, 128, {}),
    ([513, 64, 2000], 2, 64, 96, {"num_targets": torch.tensor([10, 64, 0]), "contextual_len": 6}),
    ([1500, 2], 8, 256, 128, {"max_attn_len": 100, "num_targets": torch.tensor([7, 2])}),
    ([9000, 12000, 3], 2, 32, 32, {"num_targets": torch.tensor([20, 0, 3])}),
    # Query-time mask: windows crossing 32/64/128-row blocks, T > U in the third sequence.
    ([513, 64, 300, 2000], 2, 64, 96, {"num_targets": torch.tensor([100, 10, 200, 64]), "contextual_len": 6,
                                       "query_time": True}),
    ([1500, 700], 4, 128, 128, {"num_targets": torch.tensor([150, 7]), "max_attn_len": 100, "query_time": True}),
])
def test_bf16_error_within_twice_the_twins(lengths, heads, dim_qk, dim_v, kwargs):
    kwargs = {k: (v.cuda() if isinstance(v, torch.Tensor) else v) for k, v in kwargs.items()}
    errors = _bf16_errors(lengths, heads, dim_qk, dim_v, kwargs)
    for i, (ours, twins) in enumerate(zip(errors["triton"], errors["twin"])):
        bound = (2.0 if i == 0 else 5.0) * max(twins, 1e-3)
        assert ours <= bound, f"{['out', 'dq', 'dk', 'dv'][i]}: triton bf16 error {ours:.2e} > {bound:.2e}"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_backward_is_deterministic_on_gpu():
    q, k, v, offsets = attention_inputs([700, 1234, 5], 4, 128, 128, seed=1, dtype=torch.bfloat16, device="cuda")
    grad = torch.randn(q.shape[0], 4, 128, device="cuda", dtype=torch.bfloat16)
    runs = []
    for _ in range(2):
        out = hstu_attention(q, k, v, offsets, 1234, alpha=0.1, num_targets=torch.tensor([3, 9, 1], device="cuda"))
        runs.append(torch.autograd.grad(out, (q, k, v), grad))
    for a, b in zip(*runs):
        assert torch.equal(a, b)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_other_dtypes_on_gpu(dtype):
    q, k, v, offsets = attention_inputs([100, 333], 2, 64, 64, seed=2, dtype=dtype, device="cuda")
    out = hstu_attention(q, k, v, offsets, 333, alpha=0.125)
    ref = hstu_attention_ref(q.float(), k.float(), v.float(), offsets, 333, alpha=0.125)
    tol = 1e-4 if dtype == torch.float32 else 2e-2
    torch.testing.assert_close(out.float(), ref, rtol=tol, atol=tol)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("role,index", [("forward", i) for i in range(len(FORWARD_CONFIGS))]
                         + [("backward", i) for i in range(len(BACKWARD_CONFIGS))])
def test_every_autotune_configuration_matches_the_twin(role, index):
    """Autotune picks by speed alone: each configuration it may pick is checked here, with every mask feature."""
    config = (FORWARD_CONFIGS if role == "forward" else BACKWARD_CONFIGS)[index]
    lengths, kwargs = [1, 300, 777, 64], {"num_targets": torch.tensor([1, 40, 100, 64], device="cuda"),
                                          "contextual_len": 6}
    for extra in ({}, {"query_time": True}, {"max_attn_len": 50}):
        with launch_config(**{role: config}):
            errors = _bf16_errors(lengths, 2, 128, 128, {**kwargs, **extra}, seed=index)
        for i, (ours, twins) in enumerate(zip(errors["triton"], errors["twin"])):
            bound = (2.0 if i == 0 else 5.0) * max(twins, 1e-3)
            assert ours <= bound, f"{config} {extra} {['out', 'dq', 'dk', 'dv'][i]}: {ours:.2e} > {bound:.2e}"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_repeated_launches_reuse_a_compiled_kernel_only_for_the_same_specialisation():
    """After autotune, launches call the compiled binary directly; one compiled for 16-byte aligned inputs must not
    serve misaligned ones (Triton would have compiled those differently)."""
    from kernels.hstu_attention import _COMPILED

    q, k, v, offsets = attention_inputs([300, 777, 64], 2, 64, 64, seed=3, dtype=torch.bfloat16, device="cuda")
    grad = torch.randn_like(q)

    def run(q, k, v):
        out = hstu_attention(q, k, v, offsets, 777, alpha=0.125, check_lengths=False)
        return [out, *torch.autograd.grad(out, (q, k, v), grad)]

    runs = [run(q, k, v) for _ in range(3)]  # autotune, then the jitted kernel compiles, then the binary
    compiled = len(_COMPILED)
    assert compiled >= 3  # the forward and both backward roles
    for a, b in zip(runs[1], runs[2]):
        assert torch.equal(a, b)
    shifted = []
    for t in (q, k, v):  # the same values two bytes off a 16-byte boundary
        flat = torch.empty(t.numel() + 1, dtype=t.dtype, device="cuda")
        flat[1:] = t.detach().reshape(-1)
        shifted.append(flat[1:].view(t.shape).requires_grad_())
    assert shifted[0].data_ptr() % 16 != 0
    misaligned = run(*shifted)
    assert len(_COMPILED) > compiled
    for a, b in zip(runs[2], misaligned):  # another binary may round differently, a wrong one is far off
        assert (a.float() - b.float()).abs().max() <= 0.02 * a.float().abs().max()
