"""The pipeline config: parse once at the edge into frozen dataclasses.

A config file is protobuf text format (schema: ``components/proto/pipeline.proto``). Its ``model_config`` block
is the spec's block verbatim; every other section is optional and defaults as the schema documents.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from pathlib import Path

from google.protobuf import text_format
from google.protobuf.message import Message

from components.id_features import FeatureConfig, check_deliverable, embedding_tables, resolve_features
from components.proto import pipeline_pb2
from hstu_model.config import ModelConfig, decimal_float, model_config_from_proto
from hstu_model.config_text import ConfigError, FieldLines, parse_text
from hstu_model.proto import model_pb2

ACTIONS = ("is_click", "is_like", "is_follow", "is_comment", "is_forward", "is_hate", "long_view", "is_profile_enter")
MAX_ITEM_COUNTER_DAYS = 30


@dataclass(frozen=True)
class ActionRule:
    action: str
    when: str


@dataclass(frozen=True)
class ColumnMapping:
    user_id: str
    video_id: str
    time: str
    time_unit: str
    play_time_ms: str
    duration_ms: str
    action_rules: tuple[ActionRule, ...]


@dataclass(frozen=True)
class DataConfig:
    events_path: str
    user_features_path: str
    events_format: str
    work_dir: str
    window_days: int
    max_uih_len: int
    max_candidates: int
    max_bad_row_fraction: float
    train_windows: int
    column_mapping: ColumnMapping | None
    spark_master: str
    spark_driver_memory: str
    history_mode: str  # "WINDOW_START" | "QUERY_TIME"
    raw_data_timeout_s: int
    video_features_path: str
    item_counter_days: int  # 0: candidates carry no item counters

    @property
    def query_time(self) -> bool:
        return self.history_mode == "QUERY_TIME"


@dataclass(frozen=True)
class OptimizerConfig:
    name: str
    lr: float
    weight_decay: float
    eps: float


@dataclass(frozen=True)
class TrainConfig:
    dense_optimizer: OptimizerConfig
    sparse_optimizer: OptimizerConfig
    batch_token_budget: int
    epochs: int
    max_steps: int
    warmup_steps: int
    grad_clip_norm: float
    precision: str
    allow_tf32: bool
    checkpoint_every_steps: int
    shuffle_buffer: int
    num_workers: int
    seed: int
    device: str
    allow_kernel_fallback: bool
    log_every_steps: int
    id_bias_lr: float = 0.0  # 0: sparse_optimizer.lr
    summary_wide_lr: float = 0.0  # 0: dense_optimizer.lr
    prefit_wide: bool = False  # the summary's linear term starts as a fitted logistic regression


@dataclass(frozen=True)
class EvalConfig:
    batch_token_budget: int
    grouped_auc: bool


@dataclass(frozen=True)
class TaskRule:
    task_name: str
    auc_floor: float
    max_regression: float


@dataclass(frozen=True)
class PromotionConfig:
    registered_model_name: str
    default_auc_floor: float
    default_max_regression: float
    task_rules: tuple[TaskRule, ...]
    gated_tasks: tuple[str, ...]

    def rule(self, task: str) -> TaskRule:
        """The floor and allowed regression of ``task`` (its own rule, else the defaults)."""
        for r in self.task_rules:
            if r.task_name == task:
                return r
        return TaskRule(task, self.default_auc_floor, self.default_max_regression)


@dataclass(frozen=True)
class TrackingConfig:
    tracking_uri: str
    experiment_name: str
    log_system_metrics: bool


@dataclass(frozen=True)
class PipelineConfig:
    """The whole resolved pipeline config; ``text`` is the resolved config in text format (with defaults)."""

    model: ModelConfig
    features: tuple[FeatureConfig, ...]
    data: DataConfig
    train: TrainConfig
    eval: EvalConfig
    promotion: PromotionConfig
    tracking: TrackingConfig
    source: str
    text: str

    def replace(self, **changes) -> PipelineConfig:
        return dataclasses.replace(self, **changes)


def _section(cls, msg: Message):
    """Builds dataclass ``cls`` from the same-named fields of ``msg`` (proto2 gives the schema defaults)."""
    values = {}
    for f in fields(cls):
        value = getattr(msg, f.name)
        if isinstance(value, float):
            value = decimal_float(value)
        elif hasattr(value, "extend"):  # repeated field
            value = tuple(value)
        elif f.type in ("str",) and isinstance(value, int):  # enums are shown by name
            value = msg.DESCRIPTOR.fields_by_name[f.name].enum_type.values_by_number[value].name
        values[f.name] = value
    return cls(**values)


def _data(msg: pipeline_pb2.DataConfig, model: ModelConfig, fail) -> DataConfig:
    mapping = None
    if msg.HasField("column_mapping"):
        cm = msg.column_mapping
        for i, rule in enumerate(cm.action_rules):
            path = f"data_config.column_mapping.action_rules[{i}]"
            if rule.action not in ACTIONS:
                raise fail(f"{path}.action", f"unknown action {rule.action!r}; one of {', '.join(ACTIONS)}")
            if not rule.when.strip():
                raise fail(f"{path}.when", "needs a Spark SQL condition such as \"rating >= 4\" or \"true\"")
        if cm.time_unit not in ("ms", "s"):
            raise fail("data_config.column_mapping.time_unit", f"must be 'ms' or 's', got {cm.time_unit!r}")
        rules = tuple(ActionRule(r.action, r.when) for r in cm.action_rules)
        mapping = ColumnMapping(cm.user_id, cm.video_id, cm.time, cm.time_unit, cm.play_time_ms, cm.duration_ms, rules)
    values = {f.name: getattr(msg, f.name) for f in fields(DataConfig) if f.name not in ("column_mapping", "history_mode")}
    values["history_mode"] = pipeline_pb2.HistoryMode.Name(msg.history_mode)
    if "://" not in values["work_dir"]:  # local: absolute now, so every task and process agrees on it
        values["work_dir"] = str(Path(values["work_dir"]).expanduser().resolve())
    data = DataConfig(column_mapping=mapping, **values)
    if data.events_format not in ("csv", "parquet"):
        raise fail("data_config.events_format", f"must be 'csv' or 'parquet', got {data.events_format!r}")
    for name in ("window_days", "max_uih_len", "max_candidates", "train_windows", "raw_data_timeout_s"):
        if getattr(data, name) <= 0:
            raise fail(f"data_config.{name}", f"must be > 0, got {getattr(data, name)}")
    if data.item_counter_days > MAX_ITEM_COUNTER_DAYS:
        raise fail("data_config.item_counter_days",
                   f"must be at most {MAX_ITEM_COUNTER_DAYS} (each window reads that many earlier raw days), "
                   f"got {data.item_counter_days}")
    if data.item_counter_days and not model.tower.history_summary:
        raise fail("data_config.item_counter_days", "needs fusion_mtl_tower { history_summary: true }: the tower "
                   "reads the item counters beside the history summary")
    if not 0.0 <= data.max_bad_row_fraction <= 1.0:
        raise fail("data_config.max_bad_row_fraction", f"must be in [0, 1], got {data.max_bad_row_fraction}")
    # QUERY_TIME: the window's events enter the history too, one per candidate.
    per_candidate = 2 if data.query_time else 1
    tokens = len(model.feature_groups.contextual) + data.max_uih_len + per_candidate * data.max_candidates
    if tokens > model.max_seq_len:
        twice = "2 * " if data.query_time else ""
        raise fail("data_config.max_uih_len",
                   f"contextual ({len(model.feature_groups.contextual)}) + max_uih_len ({data.max_uih_len}) + "
                   f"{twice}max_candidates ({data.max_candidates}) = {tokens} exceeds max_seq_len "
                   f"{model.max_seq_len}")
    return data


def _train(msg: pipeline_pb2.TrainConfig, model: ModelConfig, fail) -> TrainConfig:
    dense = _section(OptimizerConfig, msg.dense_optimizer)
    sparse_cfg = _section(OptimizerConfig, msg.sparse_optimizer)
    if dense.name not in ("adam", "adamw"):
        raise fail("train_config.dense_optimizer.name", f"must be 'adam' or 'adamw', got {dense.name!r}")
    if sparse_cfg.name not in ("rowwise_adagrad", "adam"):
        raise fail("train_config.sparse_optimizer.name", f"must be 'rowwise_adagrad' or 'adam', got {sparse_cfg.name!r}")
    values = {f.name: getattr(msg, f.name) for f in fields(TrainConfig) if "optimizer" not in f.name}
    values["precision"] = pipeline_pb2.Precision.Name(msg.precision)
    for name in ("grad_clip_norm", "id_bias_lr", "summary_wide_lr"):
        values[name] = decimal_float(getattr(msg, name))
    train = TrainConfig(dense_optimizer=dense, sparse_optimizer=sparse_cfg, **values)
    if train.batch_token_budget <= 0:
        raise fail("train_config.batch_token_budget", f"must be > 0, got {train.batch_token_budget}")
    if train.device not in ("auto", "cpu", "cuda"):
        raise fail("train_config.device", f"must be auto, cpu or cuda, got {train.device!r}")
    for name in ("lr",):
        for opt, cfg in (("dense_optimizer", dense), ("sparse_optimizer", sparse_cfg)):
            if getattr(cfg, name) <= 0:
                raise fail(f"train_config.{opt}.{name}", f"must be > 0, got {getattr(cfg, name)}")
    wide = (("id_bias_lr", model.tower.id_bias, "id_bias"),
            ("summary_wide_lr", model.tower.history_summary, "history_summary"))
    for name, present, switch in wide:
        if getattr(train, name) < 0:
            raise fail(f"train_config.{name}", f"must be >= 0 (0: the optimizer's), got {getattr(train, name)}")
        if getattr(train, name) and not present:
            raise fail(f"train_config.{name}", f"is set but fusion_mtl_tower.{switch} is off: nothing learns at it")
    if train.prefit_wide and not model.tower.history_summary:
        raise fail("train_config.prefit_wide", "is set but fusion_mtl_tower.history_summary is off: there is no "
                   "linear term to fit")
    return train


def _promotion(msg: pipeline_pb2.PromotionConfig, model: ModelConfig, fail) -> PromotionConfig:
    tasks = {t.task_name for t in model.tasks}
    rules = []
    for i, r in enumerate(msg.task_rules):
        if r.task_name not in tasks:
            raise fail(f"promotion_config.task_rules[{i}].task_name",
                       f"unknown task {r.task_name!r}; the model's tasks are {', '.join(sorted(tasks))}")
        rules.append(TaskRule(r.task_name, r.auc_floor if r.HasField("auc_floor") else msg.default_auc_floor,
                              r.max_regression if r.HasField("max_regression") else msg.default_max_regression))
    for i, name in enumerate(msg.gated_tasks):
        if name not in tasks:
            raise fail(f"promotion_config.gated_tasks[{i}]", f"unknown task {name!r}")
    for i, rule in enumerate(rules):
        if not 0.0 <= rule.auc_floor <= 1.0:
            raise fail(f"promotion_config.task_rules[{i}].auc_floor", f"must be in [0, 1], got {rule.auc_floor}")
        if rule.max_regression < 0:
            raise fail(f"promotion_config.task_rules[{i}].max_regression", f"must be >= 0, got {rule.max_regression}")
    if msg.default_max_regression < 0:
        raise fail("promotion_config.default_max_regression", f"must be >= 0, got {msg.default_max_regression}")
    return PromotionConfig(msg.registered_model_name, msg.default_auc_floor, msg.default_max_regression,
                           tuple(rules), tuple(msg.gated_tasks) or tuple(t.task_name for t in model.tasks))


# Sub-messages whose mere presence changes behaviour: never materialised when showing defaults.
_PRESENCE_MATTERS = {"column_mapping"}


def _fill_defaults(msg: Message) -> None:
    """Sets every unset scalar to its default and recurses into present or non-oneof sub-messages."""
    for fd in msg.DESCRIPTOR.fields:
        if fd.is_repeated:
            if fd.message_type is not None:
                for item in getattr(msg, fd.name):
                    _fill_defaults(item)
            continue
        if fd.message_type is not None:
            if msg.HasField(fd.name) or (fd.containing_oneof is None and fd.name not in _PRESENCE_MATTERS):
                _fill_defaults(getattr(msg, fd.name))
        elif not msg.HasField(fd.name):
            setattr(msg, fd.name, getattr(msg, fd.name))


def parse_config(text: str, source: str = "<config>") -> PipelineConfig:
    """Parses and validates config text. Raises ConfigError naming the field and the line."""
    msg = pipeline_pb2.PipelineConfig()
    lines: FieldLines = parse_text(text, msg, source)
    fail = lines.error
    if not msg.HasField("model_config"):
        raise ConfigError("a model_config { ... } block is required", "model_config", None, source)
    model = model_config_from_proto(msg.model_config, lines)
    check_deliverable(msg, fail)
    features = resolve_features(msg, model, fail)
    model = dataclasses.replace(model, embedding_tables=embedding_tables(features))
    data = _data(msg.data_config, model, fail)
    # the model reads samples of this layout
    model = dataclasses.replace(model, query_time=data.query_time, item_counters=data.item_counter_days > 0)
    train = _train(msg.train_config, model, fail)
    promotion = _promotion(msg.promotion_config, model, fail)
    resolved = pipeline_pb2.PipelineConfig()
    resolved.CopyFrom(msg)
    _fill_defaults(resolved)
    return PipelineConfig(model=model, features=features, data=data, train=train,
                          eval=_section(EvalConfig, msg.eval_config), promotion=promotion,
                          tracking=_section(TrackingConfig, msg.tracking_config), source=source,
                          text=text_format.MessageToString(resolved))


def load_config(path: str | Path) -> PipelineConfig:
    """Reads and validates a pipeline config file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file: {exc.strerror}", "", None, str(path)) from None
    return parse_config(text, str(path))


def apply_overrides(config: PipelineConfig, *, kernel: str | None = None, train_windows: int | None = None,
                    auc_floors: dict[str, float] | None = None, max_regression: float | None = None,
                    work_dir: str | None = None, events_path: str | None = None,
                    user_features_path: str | None = None) -> PipelineConfig:
    """A copy of ``config`` with run-time choices (Airflow Params, CLI flags) applied.

    The choices are written into the config text and the result parsed again, so they are validated like the
    file and the resolved ``text`` (logged with every run) shows them.
    """
    msg = pipeline_pb2.PipelineConfig()
    text_format.Parse(config.text, msg)
    source = f"{config.source} + run parameters"
    if kernel:
        if kernel not in ("TRITON", "PYTORCH"):
            raise ConfigError(f"must be TRITON or PYTORCH, got {kernel!r}", "kernel", None, source)
        msg.model_config.kernel = model_pb2.Kernel.Value(kernel)
    if train_windows is not None:
        msg.data_config.train_windows = train_windows
    if work_dir:
        msg.data_config.work_dir = work_dir
    if events_path:
        msg.data_config.events_path = events_path
    if user_features_path:
        msg.data_config.user_features_path = user_features_path
    promotion = msg.promotion_config
    rules = {r.task_name: r for r in promotion.task_rules}
    for task, floor in (auc_floors or {}).items():
        rule = rules.get(task) or promotion.task_rules.add(task_name=task)
        rule.auc_floor = float(floor)
        rules[task] = rule
    if max_regression is not None:
        promotion.default_max_regression = float(max_regression)
        for rule in promotion.task_rules:
            rule.max_regression = float(max_regression)
    for rule in promotion.task_rules:  # a rule without a floor keeps the default floor
        if not rule.HasField("auc_floor"):
            rule.auc_floor = promotion.default_auc_floor
    return parse_config(text_format.MessageToString(msg), source)
