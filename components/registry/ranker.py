"""A registered version as an MLflow pyfunc model: the trained DlrmHSTU with everything it needs to score.

``mlflow.pyfunc.load_model(uri).predict(samples)`` takes sample rows in the sample table's layout (docs/design.md
§4.3: one row per user and window, the history and candidate lists; the label columns may be left out) and
returns one row per candidate: ``sample`` (row of the input), ``user_id``, ``candidate`` (index in its row),
the candidate's item id, and one probability column per task, named as the model's own tasks. The model carries
its resolved model config (``model.config``: feature groups, table sizes, tasks, history mode) and its raw id ->
row mapping (``model.id_rows``), so a version loads and scores in a fresh process whatever the repository's
config says today. The logged model has a signature and an input example (a few rows of its training data).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from hstu_model.backend import resolve_backend, use_backend
from hstu_model.batch import LABEL_COLUMN, WATCH_LABEL_COLUMN, collate

EXAMPLE_ROWS = 2  # sample rows kept as the logged model's input example
LABEL_COLUMNS = (LABEL_COLUMN, WATCH_LABEL_COLUMN)


class HstuRanker(mlflow.pyfunc.PythonModel):
    """``predict(sample rows) -> per-candidate task probabilities`` around one trained DlrmHSTU (CPU)."""

    def __init__(self, model: torch.nn.Module):
        self.model = model

    def load_context(self, context: Any) -> None:
        # Scored where it is loaded, on the CPU: the Triton kernels of a GPU run give way to their PyTorch twins
        # (the same function; docs/design.md §6).
        device = next(self.model.parameters()).device
        use_backend(self.model, resolve_backend(self.model.config.kernel, device, strict=False))

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        model = self.model
        table = pa.Table.from_pandas(pd.DataFrame(model_input), preserve_index=False)
        batch = collate(table, model.config, getattr(model, "id_rows", None))
        with torch.no_grad():
            probs = torch.sigmoid(model.eval()(batch).float()).numpy()  # [C, T]
        lengths = batch.candidate_lengths.numpy()
        groups = model.config.feature_groups
        sample = np.repeat(np.arange(len(lengths)), lengths)
        out = pd.DataFrame({
            "sample": sample,
            "user_id": np.asarray(table.column("user_id").to_numpy(), np.int64)[sample],
            "candidate": np.concatenate([np.arange(n) for n in lengths]) if len(lengths) else [],
            groups.candidate[0]: np.concatenate([np.asarray(v, np.int64)
                                                 for v in table.column(groups.candidate[0]).to_pylist()]),
        })
        for i, task in enumerate(model.config.tasks):
            out[task.task_name] = probs[:, i].astype(np.float64)
        return out


def input_example(sample_file: Path, rows: int = EXAMPLE_ROWS) -> pd.DataFrame:
    """The first ``rows`` samples of a Parquet file, without their labels: what ``predict`` takes."""
    import pyarrow.parquet as pq

    table = pq.ParquetFile(sample_file).read_row_group(0).slice(0, rows)
    return table.drop_columns([c for c in LABEL_COLUMNS if c in table.column_names]).to_pandas()


def log_ranker(model: torch.nn.Module, example: pd.DataFrame, *, name: str = "model",
               pip_requirements: Sequence[str] | None = None) -> Any:
    """Logs ``model`` (CPU, eval) as an ``HstuRanker`` pyfunc model with a signature inferred from ``example``
    and its predictions, into the active run. Returns MLflow's ModelInfo."""
    from mlflow.models import infer_signature

    ranker = HstuRanker(model)
    ranker.load_context(None)
    signature = infer_signature(example, ranker.predict(None, example))
    return mlflow.pyfunc.log_model(name=name, python_model=ranker, input_example=example, signature=signature,
                                   pip_requirements=list(pip_requirements) if pip_requirements else None)
