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

# Vocabulary sizes (rows, row 0 reserved) of tables no feature_configs entry sizes (docs/design.md §3).
DEFAULT_ID_BUCKETS = {"user_id": 100_000, "video_id": 100_000}
DEFAULT_CATEGORICAL_BUCKETS = 1024
DEFAULT_SEQUENCE_EMBEDDING_DIM = 64

Fail = Callable[[str, str], ConfigError]  # (field path, message) -> the error naming the field's line


@dataclass(frozen=True)
class FeatureConfig:
    """One id feature: table rows (``num_buckets``: exact vocabulary; ``hashed``: stable hash) and embedding dim."""

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
        if f.feature_name in given:
            raise fail(f"feature_configs[{i}].id_feature.feature_name",
                       f"{f.feature_name!r} is configured twice (also feature_configs[{given[f.feature_name][0]}])")
        given[f.feature_name] = (i, f)
    groups = model.feature_groups
    id_features = [*groups.contextual, *groups.uih, *groups.candidate]
    unknown = set(given) - set(id_features)
    if unknown:
        name = sorted(unknown)[0]
        raise fail(f"feature_configs[{given[name][0]}].id_feature.feature_name",
                   f"{name!r} is in no feature group of model_config")
    # A table's size, mapping and dim come from its configured features (which must agree); a feature without
    # an entry reads its table as configured, else the defaults (an exact vocabulary, docs/design.md §4.3).
    settings: dict[str, tuple[tuple[int, int, bool], str, int]] = {}
    for name in [n for n in id_features if n in given]:
        i, f = given[name]
        path = f"feature_configs[{i}].id_feature"
        if f.num_buckets == 1:
            raise fail(f"{path}.num_buckets", "must be >= 2 (row 0 is reserved for unseen ids), got 1")
        table = f.embedding_name or _default_table(name, groups)
        size, dim = _default_table_shape(table)
        mine = (f.num_buckets or f.hash_bucket_size or size, f.embedding_dim if f.HasField("embedding_dim") else dim,
                bool(f.hash_bucket_size))
        first = settings.setdefault(table, (mine, name, i))
        if first[0] != mine:
            raise fail(path, f"{name!r} shares table {table!r} with {first[1]!r} (feature_configs[{first[2]}]) but "
                             f"asks for {_describe(mine)} instead of {_describe(first[0])}; a table has one size, "
                             "mapping and embedding_dim")
    out = []
    for name in id_features:
        table = (given[name][1].embedding_name if name in given else "") or _default_table(name, groups)
        size, dim, hashed = settings[table][0] if table in settings else (*_default_table_shape(table), False)
        out.append(FeatureConfig(name, size, dim, table, hashed))
    return tuple(out)


def _default_table(feature: str, groups) -> str:
    # History and candidates share a table per video feature: item_video_id reads video_id's rows.
    return feature if feature in groups.contextual else feature.removeprefix("item_")


def _default_table_shape(table: str) -> tuple[int, int]:
    """(rows, embedding_dim) of a table no feature_configs entry sizes."""
    dim = DEFAULT_SEQUENCE_EMBEDDING_DIM if table == "video_id" else 16
    return DEFAULT_ID_BUCKETS.get(table, DEFAULT_CATEGORICAL_BUCKETS), dim


def _describe(settings: tuple[int, int, bool]) -> str:
    size, dim, hashed = settings
    return f"{'hash_bucket_size' if hashed else 'num_buckets'} {size}, embedding_dim {dim}"


# Side features the sample builder writes beside each history event's video id (its candidate twin is named
# "item_" + the name): feature -> the video table column it comes from (components/data/side_features.py).
SIDE_FEATURES = {"video_tag": "tag"}
MISSING_SIDE_VALUE = -1  # a video without a row or a value in the video table


def check_deliverable(msg: pipeline_pb2.PipelineConfig, fail: Fail) -> None:
    """Rejects what the model accepts but the sample builder does not write: a second feature per history or
    candidate event other than a side feature of ``SIDE_FEATURES`` given in both groups (history ``f``,
    candidates ``item_f``), which would fail only later, at collate."""
    groups = {g.group_name: (i, list(g.feature_names)) for i, g in enumerate(msg.model_config.feature_groups)}
    _, uih = groups.get("uih", (0, []))
    _, candidate = groups.get("candidate", (0, []))
    side = uih[1:]
    for name in ("uih", "candidate"):
        if name not in groups or len(groups[name][1]) <= 1:
            continue
        i, features = groups[name]
        ok = len(side) == 1 and side[0] in SIDE_FEATURES and candidate[1:] == ["item_" + side[0]]
        if not ok:
            raise fail(f"model_config.feature_groups[{i}].feature_names",
                       f"group {name!r} has features {features}; the sample builder writes the video id and at "
                       f"most one side feature of {sorted(SIDE_FEATURES)}, named f in the uih group and item_f in "
                       "the candidate group")


def embedding_tables(features: tuple[FeatureConfig, ...]) -> tuple[EmbeddingTableConfig, ...]:
    """Groups features by ``embedding_name`` into tables (``resolve_features`` made a table's features agree)."""
    tables: dict[str, EmbeddingTableConfig] = {}
    for f in features:
        t = tables.get(f.embedding_name)
        if t is None:
            tables[f.embedding_name] = EmbeddingTableConfig(f.embedding_name, f.num_buckets, f.embedding_dim,
                                                            (f.feature_name,), f.hashed)
        else:
            tables[f.embedding_name] = dataclasses.replace(t, feature_names=t.feature_names + (f.feature_name,))
    return tuple(tables.values())
