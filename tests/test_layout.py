"""The import direction of docs/design.md §2: dags -> components -> hstu_model -> kernels, and within
components the stages: orchestration -> training -> {baselines, registry, data}, baselines -> data."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# package -> top-level modules it must never import
FORBIDDEN = {
    "kernels": {"components", "hstu_model", "dags", "pyspark", "mlflow", "airflow", "torchrec", "pandas"},
    "hstu_model": {"components", "dags", "pyspark", "mlflow", "airflow"},
    "components": {"dags"},
}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_point_one_way(package):
    bad = {}
    for path in (REPO / package).rglob("*.py"):
        wrong = _imports(path) & FORBIDDEN[package]
        if wrong:
            bad[str(path.relative_to(REPO))] = sorted(wrong)
    assert not bad, f"imports against docs/design.md §2: {bad}"


# components' sub-packages (stages) -> the stages they must never import. orchestration may import every stage;
# nothing but dags/ and tests/ imports orchestration (hstu_model and kernels import no components at all).
STAGES = ("data", "baselines", "training", "registry", "orchestration")
SHARED = "components (top level)"  # config.py, id_features.py, protogen.py, proto/, datagen/: the stages' common ground
STAGE_FORBIDDEN = {
    "data": {"baselines", "training", "registry", "orchestration"},
    "baselines": {"training", "registry", "orchestration"},
    "training": {"orchestration"},
    "registry": {"baselines", "training", "orchestration"},
    SHARED: set(STAGES),
}
# Imports that go against STAGE_FORBIDDEN today, each with why it is there; remove a line when its import moves
# (test_known_stage_exceptions_still_exist fails once the import is gone, so the list cannot go stale).
KNOWN_STAGE_EXCEPTIONS: dict[tuple[str, str], str] = {}  # (file, stage) -> why; none today


def _module_imports(path: Path) -> set[str]:
    """Every dotted module name the file imports, anywhere in it (``from a import b`` counts as a and a.b)."""
    package = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*parent, *([base] if base else [])])
            names.add(base)
            names.update(f"{base}.{a.name}" for a in node.names)
    return names


def _stage_of(path: Path) -> str:
    parts = path.relative_to(REPO / "components").parts
    return parts[0] if len(parts) > 1 and parts[0] in STAGES else SHARED


def _imported_stages(path: Path) -> set[str]:
    stages = set()
    for name in _module_imports(path):
        parts = name.split(".")
        if len(parts) > 1 and parts[0] == "components" and parts[1] in STAGES:
            stages.add(parts[1])
    return stages


def _stage_violations() -> set[tuple[str, str]]:
    """(file, stage) for every import of a stage that STAGE_FORBIDDEN forbids the file's own stage."""
    found = set()
    for path in (REPO / "components").rglob("*.py"):
        forbidden = STAGE_FORBIDDEN.get(_stage_of(path), set())
        found.update((str(path.relative_to(REPO)), stage) for stage in _imported_stages(path) & forbidden)
    return found


def test_every_stage_is_a_package_in_the_table():
    folders = {p.name for p in (REPO / "components").iterdir() if (p / "__init__.py").exists()}
    assert set(STAGES) <= folders, sorted(set(STAGES) - folders)
    assert set(STAGE_FORBIDDEN) == {*STAGES, SHARED} - {"orchestration"}
    assert not (REPO / "components" / "baselines.py").exists(), "a module would shadow the baselines package"


def test_stages_import_one_way():
    bad = _stage_violations() - set(KNOWN_STAGE_EXCEPTIONS)
    assert not bad, f"stage imports against docs/design.md §2: {sorted(bad)}"


def test_known_stage_exceptions_still_exist():
    gone = set(KNOWN_STAGE_EXCEPTIONS) - _stage_violations()
    assert not gone, f"these imports no longer exist; remove them from KNOWN_STAGE_EXCEPTIONS: {sorted(gone)}"


def test_only_dags_and_tests_import_orchestration():
    bad = {}
    for folder in ("components", "hstu_model", "kernels", "benchmarks"):
        for path in (REPO / folder).rglob("*.py"):
            rel = str(path.relative_to(REPO))
            if rel.startswith("components/orchestration/") or (rel, "orchestration") in KNOWN_STAGE_EXCEPTIONS:
                continue
            if "orchestration" in _imported_stages(path):
                bad[rel] = "components.orchestration"
    assert not bad, bad


def test_stage_rules_see_real_imports():
    """The checker is not vacuous: the trainer's imports of data, baselines and registry are found."""
    training = set()
    for path in (REPO / "components" / "training").rglob("*.py"):
        training |= _imported_stages(path)
    assert {"data", "baselines", "registry"} <= training, training


def test_kernels_import_only_torch_and_triton():
    allowed = {"torch", "triton", "kernels", "__future__", "math", "functools", "os", "typing", "dataclasses",
               "collections", "itertools", "contextlib"}
    bad = {str(p.relative_to(REPO)): sorted(_imports(p) - allowed) for p in (REPO / "kernels").rglob("*.py")}
    assert not {k: v for k, v in bad.items() if v}, bad


def test_design_citations_name_sections_that_exist():
    import re

    sections = set(re.findall(r"^#{2,3} (\d+(?:\.\d+)?)[. ]", (REPO / "docs" / "design.md").read_text(), re.M))
    cited = {}
    for folder in ("dags", "components", "hstu_model", "kernels", "tests", "benchmarks"):
        for path in (REPO / folder).rglob("*.py"):
            for ref in re.findall(r"docs/design\.md §(\d+(?:\.\d+)?)", path.read_text()):
                cited.setdefault(ref, str(path.relative_to(REPO)))
    assert cited, "no citation found: the pattern is stale"
    missing = {ref: where for ref, where in cited.items() if ref not in sections}
    assert not missing, f"cited sections missing from docs/design.md: {missing}"


MAX_MODULE_LINES, MAX_FUNCTION_LINES = 400, 60


def _sized_modules():
    """Modules of components/, hstu_model/ and dags/, generated protobuf code left out. kernels/ is not here:
    a kernel file is sized by its Triton kernels (docs/design.md §6) and checked by its own tests and review."""
    for folder in ("components", "hstu_model", "dags"):
        yield from (p for p in sorted((REPO / folder).rglob("*.py")) if not p.name.endswith("_pb2.py"))


def test_modules_and_functions_stay_small():
    too_big = []
    for path in _sized_modules():
        text, rel = path.read_text(), path.relative_to(REPO)
        if (lines := len(text.splitlines())) > MAX_MODULE_LINES:
            too_big.append(f"{rel}: module of {lines} lines (max {MAX_MODULE_LINES})")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_big.append(f"{rel}: {node.name} has {length} lines (max {MAX_FUNCTION_LINES})")
    assert not too_big, "split by responsibility:\n" + "\n".join(too_big)


def test_size_check_sees_the_packages():
    """Not vacuous: it reads the DAG, the config and the model."""
    names = {str(p.relative_to(REPO)) for p in _sized_modules()}
    assert {"dags/hstu_daily.py", "components/config.py", "hstu_model/model.py"} <= names
    assert not any(n.startswith("kernels/") or n.endswith("_pb2.py") for n in names)
