"""Seeded random jagged inputs shared by the kernel tests (not a test module)."""

from __future__ import annotations

import torch

# Non-gpu tests run on CUDA where present (compiled Triton), else on CPU under the interpreter (conftest.py).
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def offsets_of(lengths: list[int], device: str | torch.device = "cpu") -> torch.Tensor:
    """int64 [B+1] offsets of the given sequence lengths."""
    lens = torch.tensor(lengths, dtype=torch.int64)
    return torch.cat([torch.zeros(1, dtype=torch.int64), torch.cumsum(lens, 0)]).to(device)


def attention_inputs(
    lengths: list[int], heads: int, dim_qk: int, dim_v: int, *, seed: int, dtype=torch.float32, device="cpu"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """q, k [L, H, Dqk], v [L, H, Dv] (requires_grad) and seq_offsets int64 [B+1]."""
    gen = torch.Generator().manual_seed(seed)
    total = sum(lengths)
    q, k = (torch.randn(total, heads, dim_qk, generator=gen) for _ in range(2))
    v = torch.randn(total, heads, dim_v, generator=gen)
    q, k, v = (t.to(device=device, dtype=dtype).requires_grad_() for t in (q, k, v))
    return q, k, v, offsets_of(lengths, device)


def run_with_grads(fn, q, k, v, offsets, grad_out, max_len: int, **kwargs):
    """(output, (dq, dk, dv)) of ``fn`` (hstu_attention or its twin) at alpha 0.25."""
    out = fn(q, k, v, offsets, max_len, alpha=0.25, **kwargs)
    return out, torch.autograd.grad(out, (q, k, v), grad_out)


def compare_with_twin(kwargs: dict, *, lengths: list[int], max_len: int, heads: int, dim_qk: int, dim_v: int,
                      seed: int = 0) -> None:
    """Triton against the PyTorch twin on seeded random inputs: output and every gradient (fp32 tolerances)."""
    from kernels import hstu_attention
    from kernels.hstu_attention_ref import hstu_attention_ref

    q, k, v, offsets = attention_inputs(lengths, heads, dim_qk, dim_v, seed=seed, device=DEVICE)
    kwargs = {name: (x.to(DEVICE) if isinstance(x, torch.Tensor) else x) for name, x in kwargs.items()}
    grad_out = torch.randn(q.shape[0], heads, dim_v, generator=torch.Generator().manual_seed(seed + 1)).to(DEVICE)
    out, grads = run_with_grads(hstu_attention, q, k, v, offsets, grad_out, max_len, **kwargs)
    ref, ref_grads = run_with_grads(hstu_attention_ref, q, k, v, offsets, grad_out, max_len, **kwargs)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    for name, got, want in zip("qkv", grads, ref_grads):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5, msg=lambda m, n=name: f"d{n}: {m}")
