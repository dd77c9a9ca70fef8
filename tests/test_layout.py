"""The import direction of docs/design.md §2: dags -> components -> hstu_model -> kernels."""

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
