"""Shared fixtures of the component tests: ONE Spark session for the whole run (JVM start is 7-14 s)."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest

from components.config import PipelineConfig, load_config

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def spark():
    """A local Spark session shared by every test: 2 shuffle partitions, no UI, quiet logs."""
    pyspark = pytest.importorskip("pyspark")
    del pyspark
    from components.data.spark import get_spark

    session = get_spark(master="local[2]", driver_memory="2g", app_name="hstu-tests", shuffle_partitions=2,
                        ui=False)
    session.sparkContext.setLogLevel("ERROR")
    logging.getLogger("py4j").setLevel(logging.WARNING)
    yield session
    # Left running on purpose until the interpreter exits: other test modules reuse the active session.


@pytest.fixture(scope="session")
def base_config() -> PipelineConfig:
    return load_config(REPO / "configs" / "small_cpu.config")


@pytest.fixture
def make_config(base_config, tmp_path):
    """make_config(**data_fields) -> the small CPU config with its data section changed (work_dir in tmp_path)."""

    def make(**data_fields) -> PipelineConfig:
        fields = {"work_dir": str(tmp_path / "work"), "events_path": str(tmp_path / "raw" / "events"),
                  "user_features_path": str(tmp_path / "raw" / "user_features.csv"), **data_fields}
        return base_config.replace(data=dataclasses.replace(base_config.data, **fields))

    return make
