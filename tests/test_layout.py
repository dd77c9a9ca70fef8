"""The import direction of DESIGN §2: dags -> components -> hstu_model -> kernels."""

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
    assert not bad, f"imports against DESIGN §2: {bad}"
