"""Kernel tests run the Triton code under Triton's CPU interpreter when no GPU is present.

kernels.backend compiles each kernel at its first launch (LazyKernel), so setting TRITON_INTERPRET here works
even when another test module imported `kernels` earlier in the same pytest process.
"""

import os

import torch

if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"
