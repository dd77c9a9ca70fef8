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
    """Slow tests first (the DAG runs, then the rest in collection order): under `make test`'s two workers the
    longest files then start at once on separate workers and overlap everything else, instead of meeting at the
    end."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
