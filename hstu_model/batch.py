"""The jagged training batch of DlrmHSTU and its collate function from user-window sample rows (docs/design.md §4.3).

One sample = one (user, window) row: contextual ids (one per feature), a history of ``U_b`` events and
``T_b`` candidates. Sequences are kept jagged: values concatenated over the batch plus ``lengths [B]``;
offsets are derived (``offsets [B+1]``, int64). Nothing is padded.

Raw ids become table rows here, through the model's ``IdRows`` (vocabulary or stable hash, never a modulo), so
the model only sees valid rows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from hstu_model.config import ModelConfig
from hstu_model.id_rows import IdRows
from hstu_model.item_counters import ACTION_BITS

LABEL_COLUMN = "item_action_weight"
WATCH_LABEL_COLUMN = "item_watch_time"
GROUP_COLUMN = "user_id"
# per candidate, its video's counters at query time (data_config.item_counter_days; components/data/item_counters.py)
ITEM_COUNTS_COLUMN = "item_counts"


def offsets_from_lengths(lengths: torch.Tensor) -> torch.Tensor:
    """int64 ``lengths [B]`` -> ``offsets [B+1]`` (torch only: no fbgemm, works on CUDA)."""
    return torch.cat([lengths.new_zeros(1), torch.cumsum(lengths, 0)])


@dataclass
class HstuBatch:
    """A batch of B samples in jagged form (all tensors on one device).

    Attributes:
        contextual: feature -> int64 [B] table rows, one token per feature (config order).
        uih_ids: uih feature -> int64 [U] table rows; U = uih_lengths.sum().
        uih_action: int64 [U] action bitmask; uih_watchtime: float32 [U] seconds;
        uih_timestamp: int64 [U] epoch seconds; uih_lengths: int64 [B].
        candidate_ids: candidate feature -> int64 [C] table rows; C = candidate_lengths.sum().
        candidate_timestamp: int64 [C] query time, epoch seconds; candidate_lengths: int64 [B].
        labels: int64 [C] action bitmask of each candidate, or None (inference).
        watch_time: float32 [C] watch time label, or None.
        user_ids: int64 [C] raw ``user_id`` of each candidate's sample (grouping key for grouped AUC).
        candidate_counts: int64 [C, 1 + 8] each candidate's item counters (column ``item_counts``), or None
            when the model reads none (``ModelConfig.item_counters``).
    """

    contextual: dict[str, torch.Tensor]
    uih_ids: dict[str, torch.Tensor]
    uih_action: torch.Tensor
    uih_watchtime: torch.Tensor
    uih_timestamp: torch.Tensor
    uih_lengths: torch.Tensor
    candidate_ids: dict[str, torch.Tensor]
    candidate_timestamp: torch.Tensor
    candidate_lengths: torch.Tensor
    labels: torch.Tensor | None
    watch_time: torch.Tensor | None
    user_ids: torch.Tensor
    candidate_counts: torch.Tensor | None = None

    @property
    def batch_size(self) -> int:
        return int(self.uih_lengths.numel())

    @property
    def num_candidates(self) -> int:
        """C, the candidates in the batch (rows of the model's logits)."""
        return int(self.candidate_timestamp.numel())

    @property
    def num_tokens(self) -> int:
        """Tokens the encoder runs over: B*K contextual + U history + C candidates."""
        return self.batch_size * len(self.contextual) + int(self.uih_timestamp.numel()) + self.num_candidates

    @property
    def uih_offsets(self) -> torch.Tensor:
        return offsets_from_lengths(self.uih_lengths)

    @property
    def candidate_offsets(self) -> torch.Tensor:
        return offsets_from_lengths(self.candidate_lengths)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> HstuBatch:
        """A copy with every tensor on ``device``."""

        def move(value: Any) -> Any:
            if isinstance(value, torch.Tensor):
                return value.to(device, non_blocking=non_blocking)
            if isinstance(value, dict):
                return {k: move(v) for k, v in value.items()}
            return value

        return HstuBatch(**{f.name: move(getattr(self, f.name)) for f in dataclasses.fields(self)})


def _check_tables(config: ModelConfig) -> None:
    if not config.embedding_tables:
        raise ValueError("ModelConfig.embedding_tables is empty: fill it from the pipeline config "
                         "(components.config.load_config) before collating or building the model")


class _Columns:
    """Column access over a list of row dicts or a pyarrow Table/RecordBatch, as numpy arrays."""

    def __init__(self, rows: Sequence[Mapping[str, Any]] | Any):
        self._arrow = hasattr(rows, "column_names") and hasattr(rows, "num_rows")
        self._rows = rows
        self.num_rows = rows.num_rows if self._arrow else len(rows)
        self.names = set(rows.column_names) if self._arrow else (set(rows[0]) if len(rows) else set())

    def _require(self, name: str) -> None:
        if name not in self.names:
            raise ValueError(f"sample rows lack column {name!r} (docs/design.md §4.3); columns: {sorted(self.names)}")

    def _dict_column(self, name: str) -> list[Any]:
        try:
            return [r[name] for r in self._rows]
        except KeyError:
            i = next(i for i, r in enumerate(self._rows) if name not in r)
            raise ValueError(f"sample row {i} lacks column {name!r} (docs/design.md §4.3)") from None

    def scalar(self, name: str, dtype: type) -> np.ndarray:
        """[B] values of a scalar column."""
        self._require(name)
        if self._arrow:
            col = self._rows.column(name)
            if col.null_count:
                raise ValueError(f"column {name!r} has {col.null_count} null value(s); ids must be set")
            return np.array(col.to_numpy(), dtype=dtype)  # writable copy (see jagged)
        return np.asarray(self._dict_column(name), dtype=dtype)

    def jagged(self, name: str, dtype: type) -> tuple[np.ndarray, np.ndarray]:
        """(values [sum lengths], lengths [B]) of a list column."""
        self._require(name)
        if self._arrow:
            col = self._rows.column(name)
            if hasattr(col, "combine_chunks"):
                col = col.combine_chunks()
            lengths = np.asarray(col.value_lengths().fill_null(0).to_numpy(zero_copy_only=False), np.int64)
            # A copy: Arrow's buffers are read-only, and tensors made from them by from_numpy must not be.
            values = np.array(col.flatten().to_numpy(zero_copy_only=False), dtype=dtype)
            return values, lengths
        lists = [x if x is not None else () for x in self._dict_column(name)]
        lengths = np.fromiter((len(x) for x in lists), np.int64, len(lists))
        values = np.fromiter((v for x in lists for v in x), dtype, int(lengths.sum()))
        return values, lengths

    def nested(self, name: str, width: int) -> np.ndarray:
        """int64 [sum lengths, width] of a list-of-arrays column whose every inner array has ``width`` values."""
        self._require(name)
        if self._arrow:
            col = self._rows.column(name)
            if hasattr(col, "combine_chunks"):
                col = col.combine_chunks()
            inner = col.flatten()
            sizes = np.asarray(inner.value_lengths().fill_null(0).to_numpy(zero_copy_only=False), np.int64)
            values = np.array(inner.flatten().to_numpy(zero_copy_only=False), dtype=np.int64)
        else:
            inner = [a for x in self._dict_column(name) for a in (x if x is not None else ())]
            sizes = np.fromiter((len(a) for a in inner), np.int64, len(inner))
            values = np.fromiter((v for a in inner for v in a), np.int64, int(sizes.sum()))
        bad = np.flatnonzero(sizes != width)
        if bad.size:
            raise ValueError(f"column {name!r}: entry {bad[0]} has {sizes[bad[0]]} values; expected {width}")
        return values.reshape(len(sizes), width)


def _same_lengths(cols: _Columns, names: Sequence[str], lengths: np.ndarray, what: str) -> None:
    for name in names:
        other = cols.jagged(name, np.float64)[1]
        bad = np.flatnonzero(other != lengths)
        if bad.size:
            raise ValueError(f"row {bad[0]}: list column {name!r} has {other[bad[0]]} entries but the {what} "
                             f"has {lengths[bad[0]]}; all {what} columns of a row must have one entry per event")


def collate(rows: Sequence[Mapping[str, Any]] | Any, config: ModelConfig, id_rows: IdRows | None = None) -> HstuBatch:
    """Builds an ``HstuBatch`` from user-window sample rows (list of dicts, or a pyarrow Table/RecordBatch).

    Column names come from ``config.feature_groups``; labels (``item_action_weight``) and ``item_watch_time``
    are optional (None at inference). Raw ids become rows through ``id_rows`` (the model's vocabularies and
    hashed tables); without it, ids of vocabulary tables must already be rows and hashed tables are hashed.

    Raises:
        ValueError: a missing column, mismatched list lengths, a sample longer than ``max_seq_len``, or (no
            ``id_rows``) an id outside its vocabulary table.
    """
    cols = _Columns(rows)
    if cols.num_rows == 0:
        raise ValueError("collate got no sample rows")
    _check_tables(config)
    groups, mapping = config.feature_groups, id_rows or IdRows(config, None)

    def table_rows(feature: str, ids: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(mapping.rows(feature, ids))

    contextual = {f: table_rows(f, cols.scalar(f, np.int64)) for f in groups.contextual}
    uih_ids, cand_ids = {}, {}
    _, uih_len = cols.jagged(groups.uih[0], np.int64)
    _, cand_len = cols.jagged(groups.candidate[0], np.int64)
    _same_lengths(cols, [*groups.uih, *groups.uih_action, *groups.uih_watchtime, *groups.uih_timestamp],
                  uih_len, "history")
    _same_lengths(cols, [*groups.candidate, *groups.candidate_timestamp], cand_len, "candidate")
    for f in groups.uih:
        uih_ids[f] = table_rows(f, cols.jagged(f, np.int64)[0])
    for f in groups.candidate:
        cand_ids[f] = table_rows(f, cols.jagged(f, np.int64)[0])
    tokens = len(groups.contextual) + uih_len + cand_len
    too_long = np.flatnonzero(tokens > config.max_seq_len)
    if too_long.size:
        i = too_long[0]
        raise ValueError(f"row {i}: {len(groups.contextual)} contextual + {uih_len[i]} history + {cand_len[i]} "
                         f"candidate tokens = {tokens[i]} exceeds max_seq_len {config.max_seq_len} (docs/design.md §4.3)")
    labels = watch = None
    if LABEL_COLUMN in cols.names:
        _same_lengths(cols, [LABEL_COLUMN], cand_len, "candidate")
        labels = torch.from_numpy(cols.jagged(LABEL_COLUMN, np.int64)[0])
    if WATCH_LABEL_COLUMN in cols.names:
        watch = torch.from_numpy(cols.jagged(WATCH_LABEL_COLUMN, np.float32)[0])
    groups_key = (cols.scalar(GROUP_COLUMN, np.int64) if GROUP_COLUMN in cols.names
                  else np.arange(cols.num_rows, dtype=np.int64))
    return HstuBatch(
        contextual=contextual,
        uih_ids=uih_ids,
        uih_action=torch.from_numpy(cols.jagged(groups.uih_action[0], np.int64)[0]),
        uih_watchtime=torch.from_numpy(cols.jagged(groups.uih_watchtime[0], np.float32)[0]),
        uih_timestamp=torch.from_numpy(cols.jagged(groups.uih_timestamp[0], np.int64)[0]),
        uih_lengths=torch.from_numpy(uih_len),
        candidate_ids=cand_ids,
        candidate_timestamp=torch.from_numpy(cols.jagged(groups.candidate_timestamp[0], np.int64)[0]),
        candidate_lengths=torch.from_numpy(cand_len),
        labels=labels,
        watch_time=watch,
        user_ids=torch.from_numpy(np.repeat(groups_key, cand_len)),
        candidate_counts=_item_counts(cols, int(cand_len.sum())) if config.item_counters else None,
    )


def _item_counts(cols: _Columns, candidates: int) -> torch.Tensor:
    """int64 [C, 1 + ACTION_BITS]: the ``item_counts`` column, one array per candidate."""
    counts = cols.nested(ITEM_COUNTS_COLUMN, 1 + ACTION_BITS)
    if len(counts) != candidates:
        raise ValueError(f"column {ITEM_COUNTS_COLUMN!r} has {len(counts)} entries but the samples have "
                         f"{candidates} candidates; it needs one per candidate")
    return torch.from_numpy(counts)
