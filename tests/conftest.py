"""Test-wide setup that must happen before any test module imports the kernels.

Without a GPU, Triton code runs under Triton's CPU interpreter. Triton reads TRITON_INTERPRET when a
@triton.jit function is first used, and some kernel helpers are used as soon as another module imports
`kernels`, so it is set here, in the root conftest, which pytest loads before collecting any test module.
"""

import os

import torch

if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"


def pytest_collection_modifyitems(config, items):
    """Modules that set ``RUN_FIRST = True`` come first. Under `make test`'s two workers (`--dist loadfile
    --no-loadscope-reorder`) the longest module, the DAG runs, then starts at once on one worker while the other
    takes the rest, instead of running alone at the end."""
    items.sort(key=lambda item: not getattr(item.module, "RUN_FIRST", False))
