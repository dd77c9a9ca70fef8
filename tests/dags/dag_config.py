"""The small CPU config as the DAG tests run it: AUC floors at 0, so a first run always becomes the champion and
later runs are judged against the champion alone."""

from __future__ import annotations

from components.orchestration.localstack import REPO


def dag_test_config(train_windows: int | None = 1) -> str:
    """configs/small_cpu.config with floors at 0 and, unless None, ``train_windows`` training windows."""
    text = (REPO / "configs" / "small_cpu.config").read_text()
    assert "default_auc_floor: 0.52" in text and "train_windows: 3" in text, "small_cpu.config changed"
    text = text.replace("default_auc_floor: 0.52", "default_auc_floor: 0.0")
    return text if train_windows is None else text.replace("train_windows: 3", f"train_windows: {train_windows}")
