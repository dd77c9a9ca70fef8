"""The model's id features: each feature's table size, embedding dim and table, resolved from
``feature_configs`` and the model's feature groups (docs/design.md §3), and the embedding tables they form.

History and candidates share one table per video feature (``item_video_id`` reads ``video_id``'s rows), and the
sample builder writes one feature per history or candidate event, which :func:`check_deliverable` enforces.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from components.proto import pipeline_pb2
from hstu_model.config import EmbeddingTableConfig, ModelConfig
from hstu_model.config_text import ConfigError

# Table sizes when neither the config nor the data's statistics give one (ids are taken modulo the size).
DEFAULT_ID_BUCKETS = {"user_id": 100_000, "video_id": 100_000}
DEFAULT_CATEGORICAL_BUCKETS = 1024
DEFAULT_SEQUENCE_EMBEDDING_DIM = 64

Fail = Callable[[str, str], ConfigError]  # (field path, message) -> the error naming the field's line


@dataclass(frozen=True)
class FeatureConfig:
    """One id feature: table size (``num_buckets`` exact vocabulary, else hashed) and embedding dim."""

    feature_name: str
    num_buckets: int
    embedding_dim: int
    embedding_name: str
    hashed: bool


def resolve_features(msg: pipeline_pb2.PipelineConfig, model: ModelConfig, fail: Fail) -> tuple[FeatureConfig, ...]:
    """Id features of the model: the contextual ones plus the shared video id table, with defaults."""
    given = {}
    for i, fc in enumerate(msg.feature_configs):
        kind = fc.WhichOneof("feature")
        if kind != "id_feature":
            raise fail(f"feature_configs[{i}].{kind}", f"{kind} is not supported yet; use id_feature")
        f = fc.id_feature
        if f.num_buckets and f.hash_bucket_size:  # (0 is "unset": the resolved text shows both fields)
            raise fail(f"feature_configs[{i}].id_feature.hash_bucket_size", "give num_buckets or hash_bucket_size, not both")
        given[f.feature_name] = (i, f)
    groups = model.feature_groups
    id_features = [*groups.contextual, *groups.uih, *groups.candidate]
    unknown = set(given) - set(id_features)
    if unknown:
        name = sorted(unknown)[0]
        raise fail(f"feature_configs[{given[name][0]}].id_feature.feature_name",
                   f"{name!r} is in no feature group of model_config")
    out = []
    for name in id_features:
        sequence = name not in groups.contextual
        # History and candidates share a table per video feature: item_video_id reads video_id's rows.
        table = name.removeprefix("item_") if sequence else name
        default_size = DEFAULT_ID_BUCKETS.get(table, DEFAULT_CATEGORICAL_BUCKETS)
        default_dim = DEFAULT_SEQUENCE_EMBEDDING_DIM if table == "video_id" else 16
        if name in given:
            f = given[name][1]
            size = f.num_buckets or f.hash_bucket_size or default_size
            out.append(FeatureConfig(name, size, f.embedding_dim if f.HasField("embedding_dim") else default_dim,
                                     f.embedding_name or table, not f.num_buckets))
        else:
            out.append(FeatureConfig(name, default_size, default_dim, table, True))
    return tuple(out)


def check_deliverable(msg: pipeline_pb2.PipelineConfig, fail: Fail) -> None:
    """Rejects what the model accepts but the sample builder does not write: a second feature per history or
    candidate event (side information such as a video's tag), which would fail only later, at collate."""
    for i, group in enumerate(msg.model_config.feature_groups):
        if group.group_name in ("uih", "candidate") and len(group.feature_names) > 1:
            raise fail(f"model_config.feature_groups[{i}].feature_names",
                       f"group {group.group_name!r} has {len(group.feature_names)} features "
                       f"{list(group.feature_names)}; the sample builder writes one per event (the video id), "
                       "so give exactly one")


def embedding_tables(features: tuple[FeatureConfig, ...]) -> tuple[EmbeddingTableConfig, ...]:
    """Groups features by ``embedding_name`` into tables (the first feature of a table sets its size)."""
    tables: dict[str, EmbeddingTableConfig] = {}
    for f in features:
        t = tables.get(f.embedding_name)
        if t is None:
            tables[f.embedding_name] = EmbeddingTableConfig(f.embedding_name, f.num_buckets, f.embedding_dim, (f.feature_name,))
        else:
            tables[f.embedding_name] = dataclasses.replace(t, feature_names=t.feature_names + (f.feature_name,))
    return tuple(tables.values())
