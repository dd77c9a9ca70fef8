"""Kernel backend selection: the config's ``kernel: TRITON | PYTORCH`` -> the ``kernels`` backend name."""

from __future__ import annotations

import logging

import torch

import kernels

logger = logging.getLogger(__name__)
_KERNELS = {"TRITON": "triton", "PYTORCH": "pytorch"}
_warned: set[str] = set()


def resolve_backend(kernel: str, device: torch.device | str, strict: bool = False) -> str:
    """The ``kernels`` backend for ``kernel`` on ``device``.

    TRITON where Triton cannot run (no CUDA, no TRITON_INTERPRET) falls back to PYTORCH with one warning per
    process, or raises when ``strict``.

    Raises:
        ValueError: unknown kernel name, or TRITON unavailable with ``strict=True``.
    """
    if kernel not in _KERNELS:
        raise ValueError(f"model_config.kernel: unknown kernel {kernel!r}; expected one of {sorted(_KERNELS)}")
    backend = _KERNELS[kernel]
    device = torch.device(device)
    if backend == "triton" and not kernels.triton_available(device):
        message = (f"kernel TRITON cannot run on device {device} (Triton needs a CUDA GPU); "
                   "using the PYTORCH kernels")
        if strict:
            raise ValueError(message.replace("; using the PYTORCH kernels", "") +
                             "; set model_config.kernel: PYTORCH, train on a GPU, or allow the PyTorch kernels "
                             "with train_config.allow_kernel_fallback: true")
        if str(device) not in _warned:
            _warned.add(str(device))
            logger.warning(message)
        return "pytorch"
    return backend


def use_backend(model: torch.nn.Module, backend: str) -> torch.nn.Module:
    """Switches every layer of a built (or unpickled) model to ``backend``, e.g. a model trained with Triton
    on a GPU and scored on a CPU. Returns the model."""
    if backend not in _KERNELS.values():
        raise ValueError(f"unknown kernels backend {backend!r}; expected one of {sorted(_KERNELS.values())}")
    for module in model.modules():
        if isinstance(getattr(module, "backend", None), str):
            module.backend = backend
    return model
