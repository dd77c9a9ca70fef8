"""Shared fixtures for the docker/ tests: paths and a filled-in copy of docker/.env.example."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"


@pytest.fixture(scope="session")
def compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


@pytest.fixture(scope="session")
def compose_text() -> str:
    return (DOCKER / "compose.yaml").read_text()


@pytest.fixture
def filled_env(tmp_path: Path) -> Path:
    """docker/.env.example with every empty value replaced by a random URL-safe secret."""
    text = (DOCKER / ".env.example").read_text()
    text = re.sub(r"^([A-Z_]+)=$", lambda m: f"{m.group(1)}={secrets.token_urlsafe(16)}", text, flags=re.M)
    path = tmp_path / "env"
    path.write_text(text)
    return path
