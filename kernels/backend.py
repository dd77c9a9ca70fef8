"""Backend selection shared by every kernel op: validation of `backend` and lazy Triton compilation.

Each public op takes `backend="triton" | "pytorch"`. Triton runs on CUDA tensors, or on CPU tensors when the
environment sets `TRITON_INTERPRET=1` (Triton's own CPU interpreter, used by the tests). An explicit
`backend="triton"` that cannot run raises with a fix hint; nothing switches backends silently.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Literal

import torch

Backend = Literal["triton", "pytorch"]
BACKENDS: tuple[str, ...] = ("triton", "pytorch")


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


def triton_available(device: torch.device | str) -> bool:
    """Whether the Triton backend can run on tensors of `device` (CUDA, or CPU with TRITON_INTERPRET=1)."""
    device = torch.device(device)
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    if device.type == "cuda":
        return torch.cuda.is_available()
    return device.type == "cpu" and _interpreting()


def check_backend(backend: str, op: str, device: torch.device) -> bool:
    """Validate `backend` for `op` on `device`; returns True when the Triton path is to be used.

    Raises:
        ValueError: unknown backend, or backend="triton" on a device Triton cannot run on here.
    """
    if backend not in BACKENDS:
        raise ValueError(f"{op}: backend={backend!r} is not one of {BACKENDS}")
    if backend == "pytorch":
        return False
    if not triton_available(device):
        raise ValueError(
            f"{op}: backend='triton' cannot run on device {device}: Triton needs CUDA tensors "
            "(or CPU tensors with the environment variable TRITON_INTERPRET=1 set before the first launch). "
            "Move the inputs to a GPU or pass backend='pytorch'."
        )
    return True


class LazyKernel:
    """A Triton kernel compiled on first launch, so TRITON_INTERPRET is read at launch time, not import time.

    `triton.jit` decides between compiling and interpreting when it decorates; deciding at the first launch
    lets a test process set TRITON_INTERPRET=1 after this package was imported (tests/kernels/conftest.py).
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        configs: list[Any] | None = None,
        key: list[str] | None = None,
        helpers: tuple[Callable[..., Any], ...] = (),
    ):
        self.fn = fn
        self.configs = configs
        self.key = key or []
        self.helpers = helpers  # device functions the kernel calls by their module-global name
        self._built: dict[tuple[bool, bool], Any] = {}
        self._helpers_built: dict[bool, dict[str, Any]] = {}

    def get(self, tuned: bool) -> Any:
        """The jitted kernel; `tuned` wraps it in `triton.autotune` (never under the interpreter)."""
        import triton

        interpret = _interpreting()
        tuned = tuned and not interpret and bool(self.configs)
        if interpret not in self._helpers_built:
            self._helpers_built[interpret] = {h.__name__: triton.jit(h) for h in self.helpers}
        # The kernel finds its helpers through its globals: bind the versions of the current mode.
        self.fn.__globals__.update(self._helpers_built[interpret])
        cache_key = (interpret, tuned)
        if cache_key not in self._built:
            kernel = triton.jit(self.fn)
            if tuned:
                kernel = triton.autotune(configs=self.configs, key=self.key)(kernel)
            self._built[cache_key] = kernel
        return self._built[cache_key]
