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
