"""Streaming reader of user-window samples (docs/design.md §4.3) with token-budget batching.

The sample Parquet of the chosen windows is cut into *units* (one row group of one file). Units are
shuffled per epoch and dealt to ``world_size * num_roles`` shards; a shard is one reader (a DataLoader
worker) of one rank. A reader streams its units one row group at a time (never the whole window), pushes
the rows through a shuffle buffer and packs them into batches whose token count (``K`` contextual + history
+ candidates, summed over the samples) stays within the budget; then collates the jagged ``HstuBatch``.

Resuming: every reader is a *role* with a deterministic stream (seeded by seed, epoch, rank, role). The
trainer counts the batches it took from each role (``LoaderPosition``); a resumed loader replays each role's
stream without collating the skipped batches and rotates the roles so that the DataLoader's round-robin over
workers starts with the role whose turn was next. The batch order after a resume equals the uninterrupted one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from hstu_model.batch import (
    GROUP_COLUMN,
    ITEM_COUNTS_COLUMN,
    LABEL_COLUMN,
    WATCH_LABEL_COLUMN,
    HstuBatch,
    collate,
)
from hstu_model.config import ModelConfig
from hstu_model.id_rows import IdRows

logger = logging.getLogger(__name__)


def sample_columns(config: ModelConfig, labels: bool = True) -> list[str]:
    """The sample columns the model reads (docs/design.md §4.3), plus labels and the user id when ``labels``."""
    g = config.feature_groups
    cols = [*g.contextual, *g.uih, *g.uih_action, *g.uih_watchtime, *g.uih_timestamp, *g.candidate,
            *g.candidate_timestamp]
    if config.item_counters:
        cols.append(ITEM_COUNTS_COLUMN)
    if labels:
        cols += [LABEL_COLUMN, WATCH_LABEL_COLUMN, GROUP_COLUMN]
    return list(dict.fromkeys(cols))


def sample_tokens(table: pa.Table | pa.RecordBatch, config: ModelConfig) -> np.ndarray:
    """int64 ``[R]`` tokens of each sample: K contextual + history length + candidate count."""
    g = config.feature_groups
    uih = pc.list_value_length(table.column(g.uih[0])).fill_null(0)
    cand = pc.list_value_length(table.column(g.candidate[0])).fill_null(0)
    return len(g.contextual) + np.asarray(uih, np.int64) + np.asarray(cand, np.int64)


def pack_by_tokens(items: Iterable[tuple[Any, int]], budget: int) -> Iterator[list[Any]]:
    """Groups ``(item, tokens)`` in order into lists whose token sum is at most ``budget``.

    A list is closed when the next item would overflow it. Raises ValueError for an item larger than the
    budget (it could never be placed).
    """
    batch: list[Any] = []
    used = 0
    for item, tokens in items:
        if tokens > budget:
            raise ValueError(f"a sample of {tokens} tokens exceeds the batch token budget {budget}; "
                             "raise train_config.batch_token_budget to at least max_seq_len")
        if used + tokens > budget and batch:
            yield batch
            batch, used = [], 0
        batch.append(item)
        used += tokens
    if batch:
        yield batch


def _shuffled(items: Iterable[Any], size: int, rng: np.random.Generator) -> Iterator[Any]:
    """Buffer shuffle: keeps ``size`` items, emits a random one per arriving item, then drains randomly."""
    if size <= 1:
        yield from items
        return
    buffer: list[Any] = []
    for item in items:
        buffer.append(item)
        if len(buffer) >= size:
            i = int(rng.integers(len(buffer)))
            buffer[i], buffer[-1] = buffer[-1], buffer[i]
            yield buffer.pop()
    while buffer:
        i = int(rng.integers(len(buffer)))
        buffer[i], buffer[-1] = buffer[-1], buffer[i]
        yield buffer.pop()


@dataclass
class LoaderPosition:
    """Where a loader stands in an epoch: batches taken per role and the role whose turn is next."""

    epoch: int = 0
    consumed: list[int] = field(default_factory=list)
    next_role: int = 0

    def advance(self, role: int, num_roles: int) -> None:
        if not self.consumed:
            self.consumed = [0] * num_roles
        self.consumed[role] += 1
        self.next_role = (role + 1) % num_roles

    def to_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "consumed": list(self.consumed), "next_role": self.next_role}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LoaderPosition:
        return cls(int(d["epoch"]), [int(c) for c in d["consumed"]], int(d["next_role"]))


@dataclass(frozen=True)
class StreamConfig:
    """How a SampleStream reads: budget, shuffling, sharding over ranks and readers."""

    token_budget: int
    shuffle_buffer: int = 0
    shuffle_units: bool = False
    seed: int = 0
    rank: int = 0
    world_size: int = 1
    num_roles: int = 1
    labels: bool = True
    worker_processes: bool = False  # run the roles in DataLoader worker processes (else in this process)


class SampleStream(IterableDataset):
    """Yields ``(role, HstuBatch)`` from sample Parquet files, one row group at a time.

    Args:
        files: sample Parquet files (``sample_files``).
        config: the model config (column names, K, tables).
        stream: budget, shuffle and sharding settings.
        position: resume point (epoch, batches already taken per role, next role); default the epoch start.
        id_rows: the model's raw id -> row mapping (``collate``); None: the samples hold rows already.
    """

    def __init__(self, files: Sequence[Path], config: ModelConfig, stream: StreamConfig,
                 position: LoaderPosition | None = None, id_rows: IdRows | None = None):
        super().__init__()
        if stream.token_budget < config.max_seq_len:
            raise ValueError(f"batch token budget {stream.token_budget} is below max_seq_len "
                             f"{config.max_seq_len}: a full-length sample would not fit in a batch")
        self.config, self.stream, self.id_rows = config, stream, id_rows
        self.position = position or LoaderPosition()
        self.columns = sample_columns(config, stream.labels)
        self.units = self._units(files)

    def _units(self, files: Sequence[Path]) -> list[tuple[str, int]]:
        units = []
        for f in files:
            meta = pq.ParquetFile(f)
            names = set(meta.schema_arrow.names)
            missing = [c for c in self.columns if c not in names and c != WATCH_LABEL_COLUMN]
            if missing:
                raise ValueError(f"sample file {f} lacks column(s) {missing} (docs/design.md §4.3)")
            units += [(str(f), i) for i in range(meta.num_row_groups) if meta.metadata.row_group(i).num_rows]
        return units

    def shard_units(self, role: int) -> list[tuple[str, int]]:
        """The units of ``role`` on this rank for the position's epoch (every shard gets a disjoint slice)."""
        s = self.stream
        order = np.arange(len(self.units))
        if s.shuffle_units:
            np.random.default_rng([s.seed, self.position.epoch, 7]).shuffle(order)
        shards = s.world_size * s.num_roles
        return [self.units[i] for i in order[s.rank * s.num_roles + role::shards]]

    def _rows(self, role: int) -> Iterator[tuple[tuple[pa.Table, int], int]]:
        """(table, row) references with their token counts, reading one row group at a time."""
        for path, group in self.shard_units(role):
            table = pq.ParquetFile(path).read_row_group(group, columns=self._present(path))
            for i, tokens in enumerate(sample_tokens(table, self.config).tolist()):
                yield (table, i), tokens

    def _present(self, path: str) -> list[str]:
        names = set(pq.ParquetFile(path).schema_arrow.names)
        return [c for c in self.columns if c in names]

    def role_batches(self, role: int, skip: int = 0) -> Iterator[HstuBatch]:
        """The batches of one role, skipping (without collating) the first ``skip``."""
        s = self.stream
        rng = np.random.default_rng([s.seed, self.position.epoch, s.rank, role])
        rows = _shuffled(self._rows(role), s.shuffle_buffer, rng)
        for n, refs in enumerate(pack_by_tokens(rows, s.token_budget)):
            if n < skip:
                continue
            yield collate(pa.concat_tables([t.slice(i, 1) for t, i in refs]), self.config, self.id_rows)

    def __iter__(self) -> Iterator[tuple[int, HstuBatch]]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        if workers != self.stream.num_roles:
            raise ValueError(f"SampleStream made for {self.stream.num_roles} readers runs in {workers}")
        role = (worker + self.position.next_role) % workers
        consumed = self.position.consumed or [0] * workers
        for batch in self.role_batches(role, consumed[role]):
            yield role, batch


def make_loader(files: Sequence[Path], config: ModelConfig, stream: StreamConfig,
                position: LoaderPosition | None = None, id_rows: IdRows | None = None) -> Iterable[tuple[int, HstuBatch]]:
    """Batches of a SampleStream: in this process (one role), or a DataLoader with ``stream.num_roles`` worker
    processes when ``stream.worker_processes`` (loading overlaps the training step). ``id_rows`` maps raw ids
    to rows (the model's own, so training and every later scoring agree).

    Yields ``(role, HstuBatch)``; count them with ``LoaderPosition.advance`` to be able to resume.
    """
    dataset = SampleStream(files, config, stream, position, id_rows)
    if not stream.worker_processes:
        if stream.num_roles != 1:
            raise ValueError(f"{stream.num_roles} reader roles need worker_processes=True")
        return iter(dataset)
    # Its own generator: creating the iterator would otherwise draw from the global RNG that the model's
    # dropouts use, and a resumed run (which creates it after restoring that RNG) would drift from the original.
    return DataLoader(dataset, batch_size=None, num_workers=stream.num_roles, persistent_workers=False,
                      prefetch_factor=2, multiprocessing_context="fork" if _fork_ok() else None,
                      generator=torch.Generator().manual_seed(stream.seed))


def _fork_ok() -> bool:
    return torch.multiprocessing.get_start_method(allow_none=True) in (None, "fork")
