"""Id embeddings: TorchRec ``EmbeddingCollection`` tables from ``config.embedding_tables`` (docs/design.md §5).

One shared ``video_id`` table serves the history (``video_id``) and the candidates (``item_video_id``).
TorchRec requires one embedding dim per ``EmbeddingCollection``, so tables are grouped by dim, one collection
per dim. ``build_embeddings`` is the factory: a sharding planner can replace the collections it returns.

Input per feature: jagged ids ``values int64 [N]`` + ``lengths int64 [B]``; output ``[N, E_f]`` float32.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import torch
from torch import nn
from torchrec.modules.embedding_configs import EmbeddingConfig
from torchrec.modules.embedding_modules import EmbeddingCollection
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

from hstu_model.config import ModelConfig


class IdEmbeddings(nn.Module):
    """Holds one ``EmbeddingCollection`` per embedding dim (``collections["d64"]``) and looks features up."""

    def __init__(self, collections: Mapping[str, EmbeddingCollection]):
        super().__init__()
        self.collections = nn.ModuleDict(dict(collections))
        self._features = {key: [f for cfg in ec.embedding_configs() for f in cfg.feature_names]
                          for key, ec in self.collections.items()}
        self.dims = {f: ec.embedding_dim() for key, ec in self.collections.items() for f in self._features[key]}
        self._tables = {f: cfg.name for ec in self.collections.values() for cfg in ec.embedding_configs()
                        for f in cfg.feature_names}

    def forward(self, features: Mapping[str, tuple[torch.Tensor, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Looks up every given feature.

        Args:
            features: feature -> (ids int64 [N_f], lengths int64 [B]).

        Returns:
            feature -> embeddings [N_f, E_f].
        """
        out: dict[str, torch.Tensor] = {}
        for key, ec in self.collections.items():
            names = [f for f in self._features[key] if f in features]
            if not names:
                continue
            if torch.compiler.is_exporting() and isinstance(ec, EmbeddingCollection):
                # The KeyedJaggedTensor split has data-dependent sizes that torch.export cannot trace; the
                # unsharded collection's own tables give the same rows.
                out.update({f: ec.embeddings[self._tables[f]](features[f][0]).float() for f in names})
                continue
            # Each feature's id count comes from a shape: given, TorchRec need not read the lengths back from
            # the GPU (a host sync per lookup) to split the ids by feature.
            kjt = KeyedJaggedTensor(
                keys=names,
                values=torch.cat([features[f][0] for f in names]),
                lengths=torch.cat([features[f][1] for f in names]),
                length_per_key=[features[f][0].shape[0] for f in names],
            )
            looked_up = ec(kjt)
            for f in names:
                out[f] = looked_up[f].values()
        return out


def build_embeddings(config: ModelConfig, device: torch.device | str) -> IdEmbeddings:
    """The factory of the model's id tables (one ``EmbeddingCollection`` per embedding dim).

    Raises:
        ValueError: ``config.embedding_tables`` is empty or misses a feature of the id groups.
    """
    groups = config.feature_groups
    needed = [*groups.contextual, *groups.uih, *groups.candidate]
    tables = config.embedding_tables
    if not tables:
        raise ValueError("ModelConfig.embedding_tables is empty: fill it from the pipeline config "
                         "(components.config.load_config) before building the model")
    have = {f for t in tables for f in t.feature_names}
    missing = [f for f in needed if f not in have]
    if missing:
        raise ValueError(f"embedding_tables has no table for feature(s) {missing}; tables: "
                         f"{[t.name for t in tables]}")
    # TorchRec's default draws rows from U(+-sqrt(1/rows)): +-0.003 for 100,000 rows, so every id starts almost
    # equal and the dense layers learn for epochs around near-zero content (docs/design.md §5, Extensions).
    std = config.embedding_init_std
    init_fn = functools.partial(nn.init.normal_, mean=0.0, std=std) if std > 0 else None
    by_dim: dict[int, list[EmbeddingConfig]] = {}
    for t in tables:
        by_dim.setdefault(t.embedding_dim, []).append(EmbeddingConfig(
            name=t.name, embedding_dim=t.embedding_dim, num_embeddings=t.num_embeddings,
            feature_names=list(t.feature_names), init_fn=init_fn))
    collections = {f"d{dim}": EmbeddingCollection(tables=cfgs, device=torch.device(device))
                   for dim, cfgs in sorted(by_dim.items())}
    return IdEmbeddings(collections)
