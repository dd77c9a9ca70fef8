"""DlrmHSTU: the HSTU ranking model over jagged user-window samples (docs/design.md §5).

Per sample the token sequence is ``[K contextual | U history, oldest first | T candidates]``:

    tokens  = preprocessor(id embeddings, actions)             jagged values [L, D], seq_offsets [B+1]
    x       = Dropout(tokens + pos_emb + time_emb)
    x       = STU_n(... STU_1(x))                             mask of docs/design.md §6, S = max_seq_len
    user    = postprocessor(x at the candidates, query time)  [C, D]
    logits  = tower(user, item content[, history summary])    [C, num_tasks]
            (+ per-task id biases with id_bias: hstu_model.id_bias)

While training, ``contextual_id_dropout`` first replaces listed contextual ids by row 0 (the unseen row).

``build_model`` builds the embedding tables through ``build_embeddings`` (the factory a sharder replaces) and
resolves the kernel backend once; every layer gets it as a constructor argument.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import torch
from torch import nn

import kernels
from hstu_model.backend import resolve_backend
from hstu_model.batch import HstuBatch, offsets_from_lengths
from hstu_model.config import ModelConfig
from hstu_model.embeddings import IdEmbeddings, build_embeddings
from hstu_model.history_summary import HistoryPrior, history_summary, side_match
from hstu_model.id_bias import IdBias
from hstu_model.id_rows import IdRows
from hstu_model.item_counters import ACTION_BITS, ItemCounterRates
from hstu_model.positional import PositionalEncoder
from hstu_model.postprocess import build_postprocessor
from hstu_model.preprocessor import ContextualPreprocessor
from hstu_model.side_affinity import SideAffinity
from hstu_model.stu import StuStack
from hstu_model.tower import FusionMtlTower

_SINGLE_FEATURE_GROUPS = ("uih_action", "uih_watchtime", "uih_timestamp", "candidate_timestamp")


def check_supported(config: ModelConfig) -> None:
    """Rejects schema options this model does not implement, naming the field.

    Raises:
        ValueError: "... is not supported" for each such option.
    """
    groups = config.feature_groups
    for name in _SINGLE_FEATURE_GROUPS:
        features = getattr(groups, name)
        if len(features) != 1:
            raise ValueError(f"feature group {name!r} with {len(features)} features {list(features)} is not "
                             "supported; give exactly one")
    if config.hstu.postprocessor.kind not in ("timestamp_layernorm", "layernorm", "l2norm"):
        raise ValueError(f"output_postprocessor {config.hstu.postprocessor.kind!r} is not supported; use "
                         "timestamp_layernorm, layernorm or l2norm")


class Encoded(NamedTuple):
    """The encoder's output: ``x [L, D]`` (STU output of every token), ``seq_offsets`` int64 [B+1], the row of
    each candidate in ``x`` (int64 [C], batch order) and the candidates' content embedding ``[C, E]``."""

    x: torch.Tensor
    seq_offsets: torch.Tensor
    candidate_rows: torch.Tensor
    candidate_content: torch.Tensor


class DlrmHSTU(nn.Module):
    """The ranking model: ``model(batch) -> logits [num_candidates, num_tasks]`` (raw logits, no sigmoid)."""

    def __init__(self, config: ModelConfig, embeddings: IdEmbeddings, backend: str, id_bias: IdBias | None = None):
        super().__init__()
        check_supported(config)
        hstu, width = config.hstu, config.hstu.stu.embedding_dim
        self.config, self.backend = config, backend
        groups = config.feature_groups
        # A second history / candidate feature (the video's tag): the summary matches it (history_summary.py).
        self.has_side_feature = len(groups.uih) > 1 and len(groups.candidate) > 1
        self.contextual_len = len(config.feature_groups.contextual)
        self.embeddings = embeddings
        self.preprocessor = ContextualPreprocessor(config, embeddings.dims)
        self.positional = PositionalEncoder(hstu.positional_encoder, width, self.contextual_len)
        self.input_dropout = nn.Dropout(hstu.input_dropout_ratio)
        self.stu = StuStack(hstu.stu, hstu.attn_num_layers, config.max_seq_len, self.contextual_len, backend,
                            config.query_time)
        self.postprocessor = build_postprocessor(hstu.postprocessor, width)
        # The candidates' item counters (data_config.item_counter_days), read in front of the history summary.
        self.item_counters = ItemCounterRates(ACTION_BITS) if config.item_counters else None
        # The pooled rate of each action over the training histories, which the summary's rates are shrunk towards.
        num_actions = len(hstu.preprocessor.action_weights)
        self.history_prior = HistoryPrior(num_actions) if config.tower.history_summary else None
        self.tower = FusionMtlTower(config.tower, width, self.preprocessor.content_dim,
                                    hstu.preprocessor.content_mlp_hidden_dim, len(config.tasks), num_actions,
                                    self.has_side_feature,
                                    self.item_counters.input_dim if self.item_counters is not None else 0,
                                    history_logits=self.history_prior is not None)
        tables = {f: t.num_embeddings for t in config.embedding_tables for f in t.feature_names}
        self.num_items = tables.get(config.feature_groups.uih[0], 1)
        # The side feature's co-engagement similarity, counted while training (side_affinity.py).
        self.side_affinity = SideAffinity(tables.get(groups.uih[1], 1)) if self.has_side_feature else None
        self.id_bias = id_bias
        # The raw id -> row mapping the model was trained with; set by the trainer and pickled with the model,
        # so a version scored later reads its own rows (None: batches hold rows already).
        self.id_rows: IdRows | None = None

    def _lookup(self, batch: HstuBatch) -> dict[str, torch.Tensor]:
        ones = torch.ones_like(batch.uih_lengths)
        features = {f: (ids, ones) for f, ids in batch.contextual.items()}
        features.update({f: (ids, batch.uih_lengths) for f, ids in batch.uih_ids.items()})
        features.update({f: (ids, batch.candidate_lengths) for f, ids in batch.candidate_ids.items()})
        return self.embeddings(features)

    def encode(self, batch: HstuBatch) -> Encoded:
        """Runs the encoder: the STU output of every token, where the candidates sit, their content."""
        emb = self._lookup(batch)
        pre = self.preprocessor
        candidate_content = pre.content(emb, candidates=True)  # [C, E]
        history, candidates = pre.history_and_candidates(pre.content(emb, candidates=False), batch.uih_action,
                                                         batch.uih_watchtime, candidate_content)  # [U, D], [C, D]
        segments = [pre.contextual(emb), history, candidates]  # [B*K, D] first
        lengths = [torch.full_like(batch.uih_lengths, self.contextual_len), batch.uih_lengths,
                   batch.candidate_lengths]
        # One layout for the tokens and their ids (no host sync: the sizes come from shapes).
        layout = kernels.JaggedLayout.of([offsets_from_lengths(n) for n in lengths], [s.shape[0] for s in segments])
        x, seq_offsets = layout.concat(segments), layout.offsets  # [L, D], [B+1]
        kernels.check_sequence_lengths(seq_offsets, self.config.max_seq_len)  # once, not in every layer
        ids = self.positional.segment_ids(batch.uih_lengths, batch.uih_timestamp, batch.candidate_lengths,
                                          batch.candidate_timestamp, self.window_lengths(batch))
        pos_ids, time_ids = layout.concat([p for p, _ in ids]), layout.concat([t for _, t in ids])  # [L] each
        x = self.input_dropout(self.positional(x, pos_ids, time_ids))
        x = self.stu(x, seq_offsets, batch.candidate_lengths)
        return Encoded(x, seq_offsets, layout.rows[2], candidate_content)

    def forward(self, batch: HstuBatch) -> torch.Tensor:
        """``batch`` (B samples, C candidates) -> logits ``[C, num_tasks]``, candidates in batch order."""
        if self.training and self.config.contextual_id_dropout:
            batch = self.drop_contextual_ids(batch)
        encoded = self.encode(batch)
        user = encoded.x.index_select(0, encoded.candidate_rows)  # [C, D]
        user = self.postprocessor(user, batch.candidate_timestamp)
        summary = self.history_summary(batch) if self.tower.summary is not None else None
        logits = self.tower(user, encoded.candidate_content, summary)
        if self.id_bias is not None:
            logits = logits + self.id_bias(batch.contextual, batch.candidate_ids, batch.uih_lengths,
                                           batch.candidate_lengths)
        return logits

    def drop_contextual_ids(self, batch: HstuBatch) -> HstuBatch:
        """The batch with each ``contextual_id_dropout`` feature's id replaced by row 0 (the row of ids the
        vocabulary has not seen) with its rate, per sample: the history must carry what the id would memorise."""
        contextual = dict(batch.contextual)
        for feature, rate in self.config.contextual_id_dropout:
            ids = contextual[feature]
            contextual[feature] = torch.where(torch.rand(ids.shape, device=ids.device) < rate, 0, ids)
        return dataclasses.replace(batch, contextual=contextual)

    def history_summary(self, batch: HstuBatch) -> torch.Tensor:
        """The tower's history summary of every candidate: ``[C, 2A + 2]``, ``[C, 6A + 4]`` with a side feature
        (its exact and soft match first; hstu_model.history_summary, hstu_model.side_affinity), after the item
        counters' columns with item_counters (hstu_model.item_counters)."""
        groups, weights = self.config.feature_groups, self.preprocessor.action_encoder.action_weights
        prior = getattr(self, "history_prior", None)  # versions pickled before it read unshrunk rates
        if prior is not None and self.training:
            prior.count(batch.uih_action, weights)
        summary = history_summary(batch.uih_action, batch.uih_lengths, batch.uih_ids[groups.uih[0]],
                                  batch.candidate_ids[groups.candidate[0]], batch.candidate_lengths, weights,
                                  self.config.max_seq_len, self.num_items, self.window_lengths(batch),
                                  prior.prior() if prior is not None else None)
        counters = getattr(self, "item_counters", None)  # versions pickled before the counters lack them
        if counters is not None:
            if batch.candidate_counts is None:
                raise ValueError("the model reads item counters (data_config.item_counter_days) but the batch has "
                                 "none: its samples lack the item_counts column")
            if self.training and batch.labels is not None:
                counters.count(batch.labels)
            summary = torch.cat([counters(batch.candidate_counts), summary], dim=1)
        if not getattr(self, "has_side_feature", False):  # versions pickled before the side match lack it
            return summary
        side, window = batch.uih_ids[groups.uih[1]], self.window_lengths(batch)
        affinity = getattr(self, "side_affinity", None)  # versions pickled before it match tags exactly only
        if affinity is not None and self.training:
            affinity.count(side, batch.uih_action, batch.uih_lengths, window)
        match = side_match(side, batch.uih_action, batch.uih_lengths, batch.candidate_ids[groups.candidate[1]],
                           batch.candidate_lengths, weights, window,
                           affinity.similarity if affinity is not None else None)
        return torch.cat([match, summary], dim=1)

    def window_lengths(self, batch: HstuBatch) -> torch.Tensor | None:
        """Query-time history: each sample's history ends with its candidates' own events, one per candidate
        (``data_config.history_mode``); None when the history ends at the window's start."""
        return torch.minimum(batch.candidate_lengths, batch.uih_lengths) if self.config.query_time else None


def build_model(config: ModelConfig, device: torch.device | str, *, strict_kernel: bool = False,
                embeddings: IdEmbeddings | None = None) -> DlrmHSTU:
    """Builds DlrmHSTU on ``device`` from a resolved config (``embedding_tables`` filled).

    Args:
        config: the model config; ``config.kernel`` picks the kernels (TRITON falls back to PYTORCH off-GPU
            with a warning unless ``strict_kernel``).
        device: where parameters live ("meta" builds without memory, e.g. for summaries).
        embeddings: tables to use instead of ``build_embeddings(config, device)`` (e.g. sharded ones).

    Raises:
        ValueError: an unsupported option, missing embedding tables, or TRITON unavailable with strict_kernel.
    """
    device = torch.device(device)
    check_supported(config)
    backend = resolve_backend(config.kernel, device, strict_kernel) if device.type != "meta" else "pytorch"
    embeddings = embeddings if embeddings is not None else build_embeddings(config, device)
    id_bias = IdBias(config, device) if config.tower.id_bias else None
    with torch.device(device):
        model = DlrmHSTU(config, embeddings, backend, id_bias)
    return model
