"""Kernels of the HSTU model on jagged tensors (values concatenated over the batch + offsets int64 [B+1]).

`hstu_attention`, `layer_norm_uvqk` and `norm_mul` have Triton kernels and take `backend="triton" | "pytorch"`;
their PyTorch twins (`*_ref.py`) are the references the tests compare against (docs/design.md §6). The
jagged concat/split, `output_projection` and `add_position_time` are plain PyTorch (no `backend` argument: a
Triton version would not pay for itself, see each module). Imports torch and triton only.
"""

from kernels.backend import Backend, triton_available
from kernels.hstu_attention import check_sequence_lengths, hstu_attention
from kernels.jagged import JaggedLayout, jagged_concat, jagged_split
from kernels.layer_norm_uvqk import layer_norm_uvqk
from kernels.norm_mul import norm_mul
from kernels.output_projection import output_projection
from kernels.position_time import add_position_time

__all__ = [
    "Backend",
    "JaggedLayout",
    "add_position_time",
    "check_sequence_lengths",
    "hstu_attention",
    "jagged_concat",
    "jagged_split",
    "layer_norm_uvqk",
    "norm_mul",
    "output_projection",
    "triton_available",
]
