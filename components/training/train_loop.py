"""The training step machinery behind ``components.training.train``: model and optimizers, one step, progress, resume.

Optimizers (docs/design.md §7, issue 7): the TorchRec embedding tables get their optimizer fused into the backward
pass (``apply_optimizer_in_backward``: row-wise Adagrad or Adam; under DistributedModelParallel the sharder
turns it into the fused FBGEMM kernel); the dense optimizer (Adam/AdamW) skips those parameters
(``in_backward_optimizer_filter``). Both follow a linear warm-up ``lr_t = lr * min(1, (t + 1) / warmup)``,
which is stateless, so a resumed run follows the same schedule. Gradient clipping acts on the dense part.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torchrec.modules.embedding_modules import EmbeddingCollection
from torchrec.optim import RowWiseAdagrad, apply_optimizer_in_backward
from torchrec.optim.optimizers import in_backward_optimizer_filter

from components.config import PipelineConfig, TrainConfig
from components.training import checkpoint as ckpt
from components.training.loader import LoaderPosition
from hstu_model.batch import HstuBatch
from hstu_model.losses import multitask_loss
from hstu_model.model import build_model

logger = logging.getLogger(__name__)


def init_distributed(device: str) -> tuple[int, int, torch.device]:
    """(rank, world size, device); joins the process group when launched by torchrun (``WORLD_SIZE`` > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("train_config.device is 'cuda' but no CUDA GPU is visible; use 'auto' or 'cpu'")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    rank = dist.get_rank() if world > 1 else 0
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return rank, world, torch.device("cuda", local)
    return rank, world, torch.device("cpu")


@dataclass
class TrainState:
    """Counters, loader position and the logged loss curve ``history``: (step, loss, samples/s, tokens/s)."""

    step: int = 0
    samples: int = 0
    tokens: int = 0
    position: LoaderPosition = field(default_factory=LoaderPosition)
    history: list[tuple[int, float, float, float]] = field(default_factory=list)
    interval: dict[str, float] = field(default_factory=lambda: {"loss": 0.0, "steps": 0, "samples": 0, "tokens": 0})

    def last_loss(self) -> float:
        return self.history[-1][1] if self.history else float("nan")

    def to_dict(self) -> dict[str, Any]:
        interval = {k: float(v) for k, v in self.interval.items()}
        return {"step": self.step, "samples": self.samples, "tokens": self.tokens,
                "position": self.position.to_dict(), "history": self.history, "interval": interval}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainState:
        return cls(d["step"], d["samples"], d["tokens"], LoaderPosition.from_dict(d["position"]),
                   [tuple(h) for h in d["history"]], dict(d["interval"]))


def _sparse_optimizer(cfg: TrainConfig, lr: float) -> tuple[type, dict[str, float]]:
    opt = cfg.sparse_optimizer
    if opt.name == "rowwise_adagrad":
        return RowWiseAdagrad, {"lr": lr, "eps": opt.eps, "weight_decay": opt.weight_decay}
    return torch.optim.Adam, {"lr": lr, "eps": opt.eps, "weight_decay": opt.weight_decay}


def _tables(module: torch.nn.Module | None) -> list[torch.nn.Parameter]:
    return [p for m in module.modules() if isinstance(m, EmbeddingCollection) for p in m.parameters()] if module else []


def _is_id_bias(name: str, opt: torch.optim.Optimizer, group: dict) -> bool:
    """Whether an optimizer group updates id-bias tables: by the parameter's name, or for the sharded model's
    fused optimizer (one name for all) by the names its ``params`` give the group's tensors."""
    names = [name]
    if hasattr(opt, "params") and isinstance(opt.params, dict):
        names = [key for key, t in opt.params.items() if any(t is p for p in group["params"])]
    return any(n.startswith("id_bias.") or ".id_bias." in n for n in names)


class Trainer:
    """The model (unsharded, or wrapped by DistributedModelParallel when ``world`` > 1) and its optimizers."""

    def __init__(self, config: PipelineConfig, device: torch.device, rank: int, world: int, digest: str):
        t = config.train
        self.config, self.device, self.rank, self.world, self.digest = config, device, rank, world, digest
        torch.manual_seed(t.seed)  # same initial weights on every rank
        model = build_model(config.model, device, strict_kernel=not t.allow_kernel_fallback)
        # The wide part may learn at its own rates (TrainConfig.id_bias_lr / summary_wide_lr); warm-up scales
        # every rate by the same factor (_set_lr).
        bias = {id(p) for p in _tables(model.id_bias)}
        for wide in (False, True):
            params = [p for p in _tables(model) if (id(p) in bias) == wide]
            if params:
                cls, kwargs = _sparse_optimizer(t, self._sparse_lr(wide))
                apply_optimizer_in_backward(cls, params, kwargs)
        if world > 1:
            from torchrec.distributed.model_parallel import DistributedModelParallel
            from torchrec.distributed.types import ShardingEnv

            model = DistributedModelParallel(model, env=ShardingEnv.from_process_group(dist.group.WORLD),
                                             device=device)
        self.model = model
        self.dense_params = [p for _, p in in_backward_optimizer_filter(model.named_parameters())]
        dense_cls = torch.optim.AdamW if t.dense_optimizer.name == "adamw" else torch.optim.Adam
        d = t.dense_optimizer
        wide = {id(p) for p in model.tower.summary_wide.parameters()} if t.summary_wide_lr else set()
        groups = [{"params": [p for p in self.dense_params if id(p) not in wide]}]
        if wide:  # a second group only when asked for, so checkpoints of one-group runs still load
            groups.append({"params": [p for p in self.dense_params if id(p) in wide], "lr": t.summary_wide_lr})
        self.dense = dense_cls(groups, lr=d.lr, eps=d.eps, weight_decay=d.weight_decay)
        bf16 = t.precision == "BF16" or (t.precision == "AUTO" and device.type == "cuda")
        self.autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
        torch.manual_seed(t.seed + rank)

    # ---- optimizers
    def _sparse_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        if self.world > 1:
            return {"fused": self.model.fused_optimizer}
        return {name: p._in_backward_optimizers[0] for name, p in self.model.named_parameters()
                if hasattr(p, "_in_backward_optimizers")}

    def _sparse_lr(self, id_bias: bool) -> float:
        t = self.config.train
        return (t.id_bias_lr if id_bias else 0.0) or t.sparse_optimizer.lr

    def _set_lr(self, step: int) -> float:
        t = self.config.train
        factor = min(1.0, (step + 1) / t.warmup_steps) if t.warmup_steps else 1.0
        for group, lr in zip(self.dense.param_groups, (t.dense_optimizer.lr, t.summary_wide_lr)):
            group["lr"] = lr * factor
        for name, opt in self._sparse_optimizers().items():
            for group in opt.param_groups:
                group["lr"] = self._sparse_lr(_is_id_bias(name, opt, group)) * factor
        return factor

    # ---- one step
    def step(self, batch: HstuBatch, state: TrainState) -> None:
        """Forward, backward (sparse tables updated in backward), clip, dense update; counts into ``state``."""
        self._set_lr(state.step)
        batch = batch.to(self.device, non_blocking=True)
        self.dense.zero_grad(set_to_none=True)
        with self.autocast:
            logits = self.model(batch)  # [C, T]
        loss, _ = multitask_loss(logits, batch, self.config.model.tasks)
        loss.backward()
        if self.config.train.grad_clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.dense_params, self.config.train.grad_clip_norm)
        self.dense.step()
        if self.world > 1:
            self.model.fused_optimizer.step()  # applies the warm-up LR to the fused tables
        state.step += 1
        state.samples += batch.batch_size
        state.tokens += batch.num_tokens
        iv = state.interval
        iv["loss"] = iv["loss"] + loss.detach().double()  # stays on the device: no host sync per step
        iv["steps"] += 1
        iv["samples"] += batch.batch_size
        iv["tokens"] += batch.num_tokens

    def all_have(self, have: bool) -> bool:
        """True when every rank still has a batch (ranks stop together: sharded tables need all of them)."""
        if self.world == 1:
            return have
        flag = torch.tensor([1 if have else 0], device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        return bool(flag.item())

    def reduce_mean(self, value: float) -> float:
        if self.world == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return float(t.item()) / self.world

    # ---- checkpoints
    def save(self, folder: Path, state: TrainState) -> None:
        optim = {"dense": self.dense.state_dict(),
                 "sparse": {k: o.state_dict() for k, o in self._sparse_optimizers().items()}}
        meta = {**state.to_dict(), "digest": self.digest}
        ckpt.save_checkpoint(folder, state.step, rank=self.rank, world_size=self.world,
                             model_state=self.model.state_dict(), optim_state=optim, state=meta,
                             barrier=dist.barrier if self.world > 1 else None)

    def resume(self, folder: Path) -> TrainState:
        """Loads the newest checkpoint of this run (same config digest), else returns a fresh state.

        Raises:
            ValueError: the checkpoint belongs to a different config or windows.
        """
        path = ckpt.latest_checkpoint(folder)
        if path is None:
            return TrainState()
        model, optim, rng, meta = ckpt.load_checkpoint(path, rank=self.rank, world_size=self.world,
                                                       map_location=self.device)
        if meta["digest"] != self.digest:
            raise ValueError(f"checkpoint {path} was written for another config or other training windows "
                             f"(digest {meta['digest']}, this run {self.digest}); delete {folder} to start over")
        self.model.load_state_dict(model)
        self.dense.load_state_dict(optim["dense"])
        for key, opt in self._sparse_optimizers().items():
            opt.load_state_dict(optim["sparse"][key])
        ckpt.set_rng_state(rng)
        logger.info("resumed from %s (step %d)", path, meta["step"])
        return TrainState.from_dict(meta)

    # ---- the trained model
    def export_model(self) -> torch.nn.Module:
        """A fresh unsharded DlrmHSTU (no optimizer hooks) holding the trained weights, in eval mode."""
        state = self.model.state_dict()
        if self.world > 1:
            state = _gather_full_state(state, self.rank)
        model = build_model(self.config.model, self.device, strict_kernel=not self.config.train.allow_kernel_fallback)
        if self.rank == 0:
            model.load_state_dict(state)
        return model.eval()

    def close(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()


def _gather_full_state(state: dict[str, Any], rank: int) -> dict[str, torch.Tensor]:
    """Gathers sharded tables (ShardedTensor) to full tensors on rank 0; every rank must call it."""
    from torch.distributed._shard.sharded_tensor import ShardedTensor

    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if isinstance(value, ShardedTensor):
            full = torch.empty(value.size(), dtype=value.dtype) if rank == 0 else None
            value.gather(dst=0, out=full)
            value = full
        if rank == 0:
            out[key.removeprefix("_dmp_wrapped_module.").removeprefix("module.")] = value.detach().cpu()
    return out


class Progress:
    """tqdm bar (loss, samples/s, tokens/s) on a TTY, plain log lines otherwise; logs each interval to MLflow."""

    def __init__(self, cfg: TrainConfig, rank: int, start_step: int, tracker: Any, reduce=None):
        self.cfg, self.rank, self.tracker, self.reduce = cfg, rank, tracker, reduce or (lambda v: v)
        self.t0 = time.perf_counter()
        self.bar = None
        if rank == 0 and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=cfg.max_steps or None, initial=start_step, unit="step", dynamic_ncols=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()

    def update(self, state: TrainState, flush: bool = False) -> None:
        """Counts a step; every ``log_every_steps`` (or on ``flush``, if any step is pending) logs the interval."""
        if flush:
            if not state.interval["steps"]:
                return
        else:
            if self.bar is not None:
                self.bar.update(1)
            if state.step % max(1, self.cfg.log_every_steps):
                return
        iv, now = state.interval, time.perf_counter()
        seconds = max(now - self.t0, 1e-9)
        loss = self.reduce(float(iv["loss"]) / max(iv["steps"], 1))
        point = (state.step, loss, iv["samples"] / seconds, iv["tokens"] / seconds)
        state.history.append(point)
        state.interval = {"loss": 0.0, "steps": 0, "samples": 0, "tokens": 0}
        self.t0 = now
        if self.rank != 0:
            return
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.4f}", samples_s=f"{point[2]:.0f}", tokens_s=f"{point[3]:.0f}")
        else:
            logger.info("step %d loss %.4f samples/s %.0f tokens/s %.0f", *point)
        if self.tracker is not None:
            self.tracker.log_step(point)
