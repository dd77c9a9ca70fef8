"""Training checkpoints: written atomically, found again after a kill, resumed bit-for-bit (same device).

Layout under ``{work_dir}/runs/{window}/checkpoints/``::

    step-000000200/            one complete checkpoint (folder renamed into place when fully written)
        model-rank0.pt         model state dict of rank 0 (each rank writes its own; sharded tables differ)
        optim-rank0.pt         dense optimizer, fused sparse optimizer(s), LR scheduler
        rng-rank0.pt           python, numpy, torch (and CUDA) RNG states
        state.json             step, epoch, loader position, loss history, MLflow run id, config digest
    LATEST                     name of the newest complete checkpoint (replaced with os.replace)

A checkpoint is written to ``.tmp-step-.../`` and renamed; ``LATEST`` is written to a temp file and
``os.replace``d. A kill at any moment leaves either the previous or the new checkpoint, never half of one.
The two newest checkpoints are kept.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

logger = logging.getLogger(__name__)
KEEP = 2


def config_digest(text: str, windows: list[str]) -> str:
    """sha256 of the resolved config text and the training windows: a checkpoint only resumes the same run."""
    return hashlib.sha256((text + "\n" + ",".join(windows)).encode()).hexdigest()[:16]


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def save_checkpoint(folder: Path, step: int, *, rank: int, world_size: int, model_state: dict[str, Any],
                    optim_state: dict[str, Any], state: dict[str, Any], barrier=None) -> Path:
    """Writes one checkpoint atomically; every rank calls it (``barrier`` syncs ranks before the rename).

    Args:
        folder: the run's checkpoint folder. step: the optimizer steps done.
        model_state / optim_state: this rank's state dicts. state: JSON-able trainer state (rank 0's is kept).
    Returns: the final checkpoint folder.
    """
    name = f"step-{step:09d}"
    final, tmp = folder / name, folder / f".tmp-{name}"
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    if barrier:
        barrier()
    torch.save(model_state, tmp / f"model-rank{rank}.pt")
    torch.save(optim_state, tmp / f"optim-rank{rank}.pt")
    torch.save(rng_state(), tmp / f"rng-rank{rank}.pt")
    if rank == 0:
        (tmp / "state.json").write_text(json.dumps({**state, "world_size": world_size, "step": step}, indent=1))
    if barrier:
        barrier()
    if rank == 0:
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        _write_text_atomic(folder / "LATEST", name)
        _prune(folder, keep=KEEP)
        logger.info("checkpoint %s written", final)
    if barrier:
        barrier()
    return final


def _prune(folder: Path, keep: int) -> None:
    done = sorted(p for p in folder.glob("step-*") if p.is_dir())
    for old in done[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def latest_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint folder, or None (no checkpoint, or LATEST names a missing folder)."""
    pointer = folder / "LATEST"
    if not pointer.exists():
        return None
    path = folder / pointer.read_text().strip()
    if not (path / "state.json").exists():
        logger.warning("LATEST names %s, which is incomplete or missing; starting fresh", path)
        return None
    return path


def load_checkpoint(path: Path, *, rank: int, world_size: int, map_location: str | torch.device = "cpu"
                    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(model_state, optim_state, rng_state, state) of ``rank``.

    Raises:
        ValueError: the checkpoint was written by a different number of ranks.
    """
    state = json.loads((path / "state.json").read_text())
    if state["world_size"] != world_size:
        raise ValueError(f"checkpoint {path} was written by {state['world_size']} process(es), this run has "
                         f"{world_size}; resume with the same number of processes or delete {path.parent}")
    model = torch.load(path / f"model-rank{rank}.pt", map_location=map_location, weights_only=False)
    optim = torch.load(path / f"optim-rank{rank}.pt", map_location=map_location, weights_only=False)
    rng = torch.load(path / f"rng-rank{rank}.pt", weights_only=False)
    return model, optim, rng, state
