"""Makes the synthetic-sample helpers importable and runs these tests with one torch thread.

Without a GPU the Triton kernels run under Triton's CPU interpreter (set in tests/conftest.py).

The test machine's 2 cores are shared by several processes; with 2 OpenMP threads per process the small
matmuls here ran ~30x slower under that contention than with one thread.
"""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True, scope="package")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
