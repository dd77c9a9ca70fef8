"""Test-wide setup that must happen before any test module imports the kernels.

Without a GPU, Triton code runs under Triton's CPU interpreter. Triton reads TRITON_INTERPRET when a
@triton.jit function is first used, and some kernel helpers are used as soon as another module imports
`kernels`, so it is set here, in the root conftest, which pytest loads before collecting any test module.
"""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"


# Files that run on one worker, one after the other, under `make test`'s two workers: the two DAG files each run
# whole Airflow DAGs (Spark, training, MLflow) and slow each other down most when they meet.
_SHARED_WORKER = {"tests/dags/test_backfill.py": "airflow_dags", "tests/dags/test_dag_run.py": "airflow_dags"}


def pytest_collection_modifyitems(config, items):
    """Slow tests first, and one xdist group per test file (two DAG files share one): under `make test`
    (`--dist loadgroup`) the DAG runs start at once on one worker while the other takes the rest, and a module's
    fixtures stay in one process."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
    for item in items:
        path = item.nodeid.split("::")[0]
        item.add_marker(pytest.mark.xdist_group(_SHARED_WORKER.get(path, path)))
