"""The model's config as frozen dataclasses, mirroring the spec's ``model_config`` block.

``model_config_from_proto`` turns the parsed ``hstu.model.ModelConfig`` message into a ``ModelConfig``,
applying the schema's defaults and checking what the schema cannot: the seven fixed group names, dims that
must agree, bitmasks and action weights. Every error names the field path and, for text input, the line.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from hstu_model.config_text import ConfigError, FieldLines
from hstu_model.proto import model_pb2

# The spec fixes these group names and their types; their features are the sample columns of docs/design.md §4.3.
GROUP_TYPES = {
    "contextual": "DEEP",
    "uih": "JAGGED_SEQUENCE",
    "candidate": "JAGGED_SEQUENCE",
    "uih_action": "JAGGED_SEQUENCE",
    "uih_watchtime": "JAGGED_SEQUENCE",
    "uih_timestamp": "JAGGED_SEQUENCE",
    "candidate_timestamp": "JAGGED_SEQUENCE",
}
ACTIVATIONS = ("nn.ReLU", "nn.SiLU", "nn.GELU", "nn.Tanh")
DEFAULT_ACTION_WEIGHTS = (1, 2, 4, 8, 16, 32, 64, 128)


@dataclass(frozen=True)
class FeatureGroups:
    """Feature names per fixed group (docs/design.md §4.3 column names)."""

    contextual: tuple[str, ...]
    uih: tuple[str, ...]
    candidate: tuple[str, ...]
    uih_action: tuple[str, ...]
    uih_watchtime: tuple[str, ...]
    uih_timestamp: tuple[str, ...]
    candidate_timestamp: tuple[str, ...]


@dataclass(frozen=True)
class StuConfig:
    embedding_dim: int
    num_heads: int
    hidden_dim: int
    attention_dim: int
    output_dropout_ratio: float
    use_group_norm: bool


@dataclass(frozen=True)
class PositionalEncoderConfig:
    num_position_buckets: int
    num_time_buckets: int
    use_time_encoding: bool


@dataclass(frozen=True)
class PreprocessorConfig:
    """Contextual preprocessor: simple action encoder, slice content encoder, simple MLPs."""

    action_embedding_dim: int
    action_weights: tuple[int, ...]
    action_mlp_hidden_dim: int
    content_mlp_hidden_dim: int


@dataclass(frozen=True)
class PostprocessorConfig:
    kind: str  # "timestamp_layernorm" | "layernorm" | "l2norm"
    time_duration_period_units: tuple[int, ...] = ()
    time_duration_units_per_period: tuple[int, ...] = ()


@dataclass(frozen=True)
class HstuConfig:
    stu: StuConfig
    input_dropout_ratio: float
    attn_num_layers: int
    positional_encoder: PositionalEncoderConfig
    preprocessor: PreprocessorConfig
    postprocessor: PostprocessorConfig


@dataclass(frozen=True)
class TaskConfig:
    task_name: str
    label_name: str
    task_bitmask: int
    metrics: tuple[str, ...]  # "auc", "grouped_auc"
    weight: float = 1.0


@dataclass(frozen=True)
class TowerConfig:
    hidden_units: tuple[int, ...]
    activation: str
    use_ln: bool
    dropout_ratio: tuple[float, ...] = ()
    history_summary: bool = False  # the tower also reads hstu_model.history_summary's features
    id_bias: bool = False  # per-task bias of every contextual and candidate id (hstu_model.id_bias)


@dataclass(frozen=True)
class EmbeddingTableConfig:
    """One embedding table; several features may share it (``video_id`` and ``item_video_id``)."""

    name: str
    num_embeddings: int
    embedding_dim: int
    feature_names: tuple[str, ...]
    # False: an exact vocabulary, row 0 reserved for unseen ids; True: stable hashing (hstu_model/id_rows.py).
    hashed: bool = False


@dataclass(frozen=True)
class ModelConfig:
    """The whole DlrmHSTU model config (spec block), resolved with defaults."""

    feature_groups: FeatureGroups
    hstu: HstuConfig
    tower: TowerConfig
    tasks: tuple[TaskConfig, ...]
    max_seq_len: int
    kernel: str  # "TRITON" | "PYTORCH"
    # Filled by the pipeline from feature_configs and the data's statistics; empty when parsed alone.
    embedding_tables: tuple[EmbeddingTableConfig, ...] = ()
    # Set by the pipeline from data_config.history_mode: the last num_candidates history tokens of each sample
    # are the window's own events, each seen only by the candidates after it (kernels.hstu_attention query_time).
    query_time: bool = False
    # Set by the pipeline from data_config.item_counter_days: each candidate carries its video's recent counters
    # (column item_counts), which the tower reads beside the history summary (hstu_model/item_counters.py).
    item_counters: bool = False
    # (contextual feature, rate): while training the id reads row 0 with this probability (model.proto).
    contextual_id_dropout: tuple[tuple[str, float], ...] = ()
    embedding_init_std: float = 0.0  # > 0: id table rows start as N(0, std^2); 0: TorchRec's default init


def decimal_float(value: float) -> float:
    """A proto float as the decimal the user wrote (0.1, not 0.10000000149)."""
    return float(f"{value:.7g}")


def _positive(value: int | float, path: str, fail: Callable[[str, str], ConfigError]) -> None:
    if not value > 0:
        raise fail(path, f"must be > 0, got {value}")


def _ratio(value: float, path: str, fail: Callable[[str, str], ConfigError]) -> None:
    if not 0.0 <= value < 1.0:
        raise fail(path, f"must be in [0, 1), got {value}")


def _feature_groups(msg: model_pb2.ModelConfig, fail) -> FeatureGroups:
    seen: dict[str, tuple[str, ...]] = {}
    for i, group in enumerate(msg.feature_groups):
        path = f"model_config.feature_groups[{i}]"
        name = group.group_name
        if name not in GROUP_TYPES:
            raise fail(f"{path}.group_name", f"unknown group {name!r}; the names are fixed: {', '.join(GROUP_TYPES)}")
        if name in seen:
            raise fail(f"{path}.group_name", f"group {name!r} is given twice")
        gtype = model_pb2.FeatureGroupType.Name(group.group_type)
        if gtype != GROUP_TYPES[name]:
            raise fail(f"{path}.group_type", f"group {name!r} must be {GROUP_TYPES[name]}, got {gtype}")
        if not group.feature_names:
            raise fail(f"{path}.feature_names", f"group {name!r} needs at least one feature")
        seen[name] = tuple(group.feature_names)
    missing = [g for g in GROUP_TYPES if g not in seen]
    if missing:
        raise fail("model_config.feature_groups", f"missing required group(s): {', '.join(missing)}")
    return FeatureGroups(**seen)


def _stu(msg: model_pb2.StuConfig, fail) -> StuConfig:
    base = "model_config.dlrm_hstu.hstu.stu"
    stu = StuConfig(msg.embedding_dim, msg.num_heads, msg.hidden_dim, msg.attention_dim,
                    decimal_float(msg.output_dropout_ratio), msg.use_group_norm)
    for name in ("embedding_dim", "num_heads", "hidden_dim", "attention_dim"):
        _positive(getattr(stu, name), f"{base}.{name}", fail)
    _ratio(stu.output_dropout_ratio, f"{base}.output_dropout_ratio", fail)
    return stu


def _preprocessor(msg: model_pb2.InputPreprocessorConfig, fail) -> PreprocessorConfig:
    base = "model_config.dlrm_hstu.hstu.input_preprocessor"
    kind = msg.WhichOneof("input_preprocessor") or "contextual_preprocessor"
    if kind != "contextual_preprocessor":
        raise fail(f"{base}.{kind}", f"{kind} is not supported; use contextual_preprocessor")
    pre = msg.contextual_preprocessor
    base += ".contextual_preprocessor"
    enc = pre.action_encoder.WhichOneof("action_encoder") or "simple_action_encoder"
    action = pre.action_encoder.simple_action_encoder
    weights = tuple(action.action_weights) or DEFAULT_ACTION_WEIGHTS
    wpath = f"{base}.action_encoder.{enc}.action_weights"
    for i, w in enumerate(weights):
        if w <= 0 or w & (w - 1):
            raise fail(f"{wpath}[{i}]", f"action weights must be powers of two (one bit each), got {w}")
    if len(set(weights)) != len(weights):
        raise fail(wpath, f"action weights must be distinct, got {list(weights)}")
    content = pre.content_encoder.WhichOneof("content_encoder") or "slice_content_encoder"
    if content != "slice_content_encoder":
        raise fail(f"{base}.content_encoder.{content}", f"{content} is not supported; use slice_content_encoder")
    dims = {}
    for name in ("action_mlp", "content_mlp"):
        mlp = getattr(pre, name)
        dims[name] = mlp.simple_mlp.hidden_dim
        _positive(dims[name], f"{base}.{name}.simple_mlp.hidden_dim", fail)
    _positive(action.action_embedding_dim, f"{base}.action_encoder.{enc}.action_embedding_dim", fail)
    return PreprocessorConfig(action.action_embedding_dim, weights, dims["action_mlp"], dims["content_mlp"])


def _postprocessor(msg: model_pb2.OutputPostprocessorConfig, fail) -> PostprocessorConfig:
    base = "model_config.dlrm_hstu.hstu.output_postprocessor"
    kind = msg.WhichOneof("output_postprocessor") or "timestamp_layernorm_postprocessor"
    if kind != "timestamp_layernorm_postprocessor":
        return PostprocessorConfig(kind.removesuffix("_postprocessor"))
    ts = msg.timestamp_layernorm_postprocessor
    periods = tuple(ts.time_duration_period_units) or (3600, 86400)
    units = tuple(ts.time_duration_units_per_period) or (24, 7)
    if len(periods) != len(units):
        raise fail(f"{base}.{kind}.time_duration_units_per_period",
                   f"needs one entry per period unit ({len(periods)}), got {len(units)}")
    for i, v in enumerate(periods + units):
        field_name = "time_duration_period_units" if i < len(periods) else "time_duration_units_per_period"
        _positive(v, f"{base}.{kind}.{field_name}[{i % len(periods)}]", fail)
    return PostprocessorConfig("timestamp_layernorm", periods, units)


def _hstu(msg: model_pb2.HstuConfig, fail) -> HstuConfig:
    base = "model_config.dlrm_hstu.hstu"
    pos = msg.positional_encoder
    positional = PositionalEncoderConfig(pos.num_position_buckets, pos.num_time_buckets, pos.use_time_encoding)
    _positive(positional.num_position_buckets, f"{base}.positional_encoder.num_position_buckets", fail)
    if positional.use_time_encoding:
        _positive(positional.num_time_buckets, f"{base}.positional_encoder.num_time_buckets", fail)
    _ratio(msg.input_dropout_ratio, f"{base}.input_dropout_ratio", fail)
    _positive(msg.attn_num_layers, f"{base}.attn_num_layers", fail)
    return HstuConfig(_stu(msg.stu, fail), decimal_float(msg.input_dropout_ratio), msg.attn_num_layers, positional,
                      _preprocessor(msg.input_preprocessor, fail), _postprocessor(msg.output_postprocessor, fail))


def _tasks(msg: model_pb2.FusionMtlTowerConfig, fail) -> tuple[TaskConfig, ...]:
    base = "model_config.dlrm_hstu.fusion_mtl_tower.task_configs"
    if not msg.task_configs:
        raise fail(base, "at least one task is required")
    tasks, names, masks = [], set(), set()
    for i, t in enumerate(msg.task_configs):
        path = f"{base}[{i}]"
        if not t.task_name:
            raise fail(f"{path}.task_name", "is required")
        if t.task_name in names:
            raise fail(f"{path}.task_name", f"task {t.task_name!r} is given twice")
        if t.label_name != "item_action_weight":
            raise fail(f"{path}.label_name", f"only 'item_action_weight' labels exist, got {t.label_name!r}")
        if t.task_bitmask == 0:
            raise fail(f"{path}.task_bitmask", f"task {t.task_name!r} needs a non-zero bitmask")
        if t.task_bitmask in masks:
            raise fail(f"{path}.task_bitmask", f"bitmask {t.task_bitmask} is already used by another task")
        for j, loss in enumerate(t.losses):
            kind = loss.WhichOneof("loss")
            if kind != "binary_cross_entropy":
                raise fail(f"{path}.losses[{j}].{kind}", f"loss {kind} is not supported; use binary_cross_entropy")
        for j, m in enumerate(t.metrics):
            if m.WhichOneof("metric") == "grouped_auc" and m.grouped_auc.grouping_key != "user_id":
                raise fail(f"{path}.metrics[{j}].grouped_auc.grouping_key",
                           f"only 'user_id' (the sample's user) can group, got {m.grouped_auc.grouping_key!r}")
        metrics = tuple(m.WhichOneof("metric") for m in t.metrics if m.WhichOneof("metric")) or ("auc",)
        names.add(t.task_name)
        masks.add(t.task_bitmask)
        tasks.append(TaskConfig(t.task_name, t.label_name, t.task_bitmask, metrics, decimal_float(t.weight)))
    return tuple(tasks)


def _tower(msg: model_pb2.MlpTowerConfig, history_summary: bool, id_bias: bool, fail) -> TowerConfig:
    base = "model_config.dlrm_hstu.fusion_mtl_tower.mlp"
    if msg.activation not in ACTIVATIONS:
        raise fail(f"{base}.activation", f"unknown activation {msg.activation!r}; one of {', '.join(ACTIVATIONS)}")
    if msg.use_bn:
        raise fail(f"{base}.use_bn", "batch norm is not supported (it makes a sample depend on its batch)")
    for i, units in enumerate(msg.hidden_units):
        _positive(units, f"{base}.hidden_units[{i}]", fail)
    return TowerConfig(tuple(msg.hidden_units) or (512,), msg.activation, msg.use_ln,
                       tuple(map(decimal_float, msg.dropout_ratio)), history_summary, id_bias)


def model_config_from_proto(msg: model_pb2.ModelConfig, lines: FieldLines | None = None) -> ModelConfig:
    """Resolves and validates a parsed ``ModelConfig`` message.

    Raises:
        ConfigError: naming the field path (and the line when ``lines`` is given).
    """
    lines = lines or FieldLines()
    fail = lines.error
    if msg.WhichOneof("model") != "dlrm_hstu":
        raise fail("model_config.dlrm_hstu", "a dlrm_hstu { ... } block is required")
    groups = _feature_groups(msg, fail)
    d = msg.dlrm_hstu
    hstu = _hstu(d.hstu, fail)
    _positive(d.max_seq_len, "model_config.dlrm_hstu.max_seq_len", fail)
    config = ModelConfig(groups, hstu, _tower(d.fusion_mtl_tower.mlp, d.fusion_mtl_tower.history_summary,
                                                 d.fusion_mtl_tower.id_bias, fail), _tasks(d.fusion_mtl_tower, fail),
                         d.max_seq_len, model_pb2.Kernel.Name(msg.kernel))
    if not d.embedding_init_std >= 0:  # (also NaN)
        raise fail("model_config.dlrm_hstu.embedding_init_std",
                   f"must be >= 0 (0: TorchRec's default init), got {decimal_float(d.embedding_init_std)}")
    config = dataclasses.replace(config, contextual_id_dropout=_id_dropout(d, groups, fail),
                                 embedding_init_std=decimal_float(d.embedding_init_std))
    if len(groups.contextual) >= d.max_seq_len:
        raise fail("model_config.dlrm_hstu.max_seq_len",
                   f"{d.max_seq_len} leaves no room after {len(groups.contextual)} contextual tokens")
    return config


def _id_dropout(d: model_pb2.DlrmHstuConfig, groups: FeatureGroups,
                fail: Callable[[str, str], ConfigError]) -> tuple[tuple[str, float], ...]:
    out = []
    for i, item in enumerate(d.contextual_id_dropout):
        path = f"model_config.dlrm_hstu.contextual_id_dropout[{i}]"
        if item.feature_name not in groups.contextual:
            raise fail(f"{path}.feature_name", f"{item.feature_name!r} is not a contextual feature "
                                               f"({list(groups.contextual)})")
        if not 0.0 <= item.rate < 1.0:
            raise fail(f"{path}.rate", f"must be in [0, 1), got {decimal_float(item.rate)}")
        out.append((item.feature_name, decimal_float(item.rate)))
    return tuple(out)


def sequence_budget(config: ModelConfig) -> int:
    """Tokens left for history and candidates after the contextual tokens (docs/design.md §4.3 bound)."""
    return config.max_seq_len - len(config.feature_groups.contextual)


__all__ = [
    "ConfigError", "EmbeddingTableConfig", "FeatureGroups", "HstuConfig", "ModelConfig", "PostprocessorConfig", "PreprocessorConfig",
    "StuConfig", "TaskConfig", "TowerConfig", "model_config_from_proto", "sequence_budget",
]
