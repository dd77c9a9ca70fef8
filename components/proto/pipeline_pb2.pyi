from hstu_model.proto import model_pb2 as _model_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class HistoryMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WINDOW_START: _ClassVar[HistoryMode]
    QUERY_TIME: _ClassVar[HistoryMode]

class Precision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUTO: _ClassVar[Precision]
    FP32: _ClassVar[Precision]
    BF16: _ClassVar[Precision]
WINDOW_START: HistoryMode
QUERY_TIME: HistoryMode
AUTO: Precision
FP32: Precision
BF16: Precision

class IdFeature(_message.Message):
    __slots__ = ("feature_name", "num_buckets", "hash_bucket_size", "embedding_dim", "embedding_name")
    FEATURE_NAME_FIELD_NUMBER: _ClassVar[int]
    NUM_BUCKETS_FIELD_NUMBER: _ClassVar[int]
    HASH_BUCKET_SIZE_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_DIM_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_NAME_FIELD_NUMBER: _ClassVar[int]
    feature_name: str
    num_buckets: int
    hash_bucket_size: int
    embedding_dim: int
    embedding_name: str
    def __init__(self, feature_name: _Optional[str] = ..., num_buckets: _Optional[int] = ..., hash_bucket_size: _Optional[int] = ..., embedding_dim: _Optional[int] = ..., embedding_name: _Optional[str] = ...) -> None: ...

class RawFeature(_message.Message):
    __slots__ = ("feature_name", "value_dim")
    FEATURE_NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_DIM_FIELD_NUMBER: _ClassVar[int]
    feature_name: str
    value_dim: int
    def __init__(self, feature_name: _Optional[str] = ..., value_dim: _Optional[int] = ...) -> None: ...

class FeatureConfig(_message.Message):
    __slots__ = ("id_feature", "raw_feature")
    ID_FEATURE_FIELD_NUMBER: _ClassVar[int]
    RAW_FEATURE_FIELD_NUMBER: _ClassVar[int]
    id_feature: IdFeature
    raw_feature: RawFeature
    def __init__(self, id_feature: _Optional[_Union[IdFeature, _Mapping]] = ..., raw_feature: _Optional[_Union[RawFeature, _Mapping]] = ...) -> None: ...

class ActionRule(_message.Message):
    __slots__ = ("action", "when")
    ACTION_FIELD_NUMBER: _ClassVar[int]
    WHEN_FIELD_NUMBER: _ClassVar[int]
    action: str
    when: str
    def __init__(self, action: _Optional[str] = ..., when: _Optional[str] = ...) -> None: ...

class ColumnMapping(_message.Message):
    __slots__ = ("user_id", "video_id", "time", "time_unit", "play_time_ms", "duration_ms", "action_rules")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    VIDEO_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    TIME_UNIT_FIELD_NUMBER: _ClassVar[int]
    PLAY_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    ACTION_RULES_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    video_id: str
    time: str
    time_unit: str
    play_time_ms: str
    duration_ms: str
    action_rules: _containers.RepeatedCompositeFieldContainer[ActionRule]
    def __init__(self, user_id: _Optional[str] = ..., video_id: _Optional[str] = ..., time: _Optional[str] = ..., time_unit: _Optional[str] = ..., play_time_ms: _Optional[str] = ..., duration_ms: _Optional[str] = ..., action_rules: _Optional[_Iterable[_Union[ActionRule, _Mapping]]] = ...) -> None: ...

class DataConfig(_message.Message):
    __slots__ = ("events_path", "user_features_path", "events_format", "work_dir", "window_days", "max_uih_len", "max_candidates", "max_bad_row_fraction", "train_windows", "column_mapping", "spark_master", "spark_driver_memory", "history_mode", "raw_data_timeout_s", "video_features_path", "item_counter_days")
    EVENTS_PATH_FIELD_NUMBER: _ClassVar[int]
    USER_FEATURES_PATH_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FORMAT_FIELD_NUMBER: _ClassVar[int]
    WORK_DIR_FIELD_NUMBER: _ClassVar[int]
    WINDOW_DAYS_FIELD_NUMBER: _ClassVar[int]
    MAX_UIH_LEN_FIELD_NUMBER: _ClassVar[int]
    MAX_CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    MAX_BAD_ROW_FRACTION_FIELD_NUMBER: _ClassVar[int]
    TRAIN_WINDOWS_FIELD_NUMBER: _ClassVar[int]
    COLUMN_MAPPING_FIELD_NUMBER: _ClassVar[int]
    SPARK_MASTER_FIELD_NUMBER: _ClassVar[int]
    SPARK_DRIVER_MEMORY_FIELD_NUMBER: _ClassVar[int]
    HISTORY_MODE_FIELD_NUMBER: _ClassVar[int]
    RAW_DATA_TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    VIDEO_FEATURES_PATH_FIELD_NUMBER: _ClassVar[int]
    ITEM_COUNTER_DAYS_FIELD_NUMBER: _ClassVar[int]
    events_path: str
    user_features_path: str
    events_format: str
    work_dir: str
    window_days: int
    max_uih_len: int
    max_candidates: int
    max_bad_row_fraction: float
    train_windows: int
    column_mapping: ColumnMapping
    spark_master: str
    spark_driver_memory: str
    history_mode: HistoryMode
    raw_data_timeout_s: int
    video_features_path: str
    item_counter_days: int
    def __init__(self, events_path: _Optional[str] = ..., user_features_path: _Optional[str] = ..., events_format: _Optional[str] = ..., work_dir: _Optional[str] = ..., window_days: _Optional[int] = ..., max_uih_len: _Optional[int] = ..., max_candidates: _Optional[int] = ..., max_bad_row_fraction: _Optional[float] = ..., train_windows: _Optional[int] = ..., column_mapping: _Optional[_Union[ColumnMapping, _Mapping]] = ..., spark_master: _Optional[str] = ..., spark_driver_memory: _Optional[str] = ..., history_mode: _Optional[_Union[HistoryMode, str]] = ..., raw_data_timeout_s: _Optional[int] = ..., video_features_path: _Optional[str] = ..., item_counter_days: _Optional[int] = ...) -> None: ...

class OptimizerConfig(_message.Message):
    __slots__ = ("name", "lr", "weight_decay", "eps")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LR_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_DECAY_FIELD_NUMBER: _ClassVar[int]
    EPS_FIELD_NUMBER: _ClassVar[int]
    name: str
    lr: float
    weight_decay: float
    eps: float
    def __init__(self, name: _Optional[str] = ..., lr: _Optional[float] = ..., weight_decay: _Optional[float] = ..., eps: _Optional[float] = ...) -> None: ...

class SparseOptimizerConfig(_message.Message):
    __slots__ = ("name", "lr", "weight_decay", "eps")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LR_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_DECAY_FIELD_NUMBER: _ClassVar[int]
    EPS_FIELD_NUMBER: _ClassVar[int]
    name: str
    lr: float
    weight_decay: float
    eps: float
    def __init__(self, name: _Optional[str] = ..., lr: _Optional[float] = ..., weight_decay: _Optional[float] = ..., eps: _Optional[float] = ...) -> None: ...

class TrainConfig(_message.Message):
    __slots__ = ("dense_optimizer", "sparse_optimizer", "batch_token_budget", "epochs", "max_steps", "warmup_steps", "grad_clip_norm", "precision", "allow_tf32", "checkpoint_every_steps", "shuffle_buffer", "num_workers", "seed", "device", "allow_kernel_fallback", "log_every_steps", "id_bias_lr", "summary_wide_lr", "prefit_wide")
    DENSE_OPTIMIZER_FIELD_NUMBER: _ClassVar[int]
    SPARSE_OPTIMIZER_FIELD_NUMBER: _ClassVar[int]
    BATCH_TOKEN_BUDGET_FIELD_NUMBER: _ClassVar[int]
    EPOCHS_FIELD_NUMBER: _ClassVar[int]
    MAX_STEPS_FIELD_NUMBER: _ClassVar[int]
    WARMUP_STEPS_FIELD_NUMBER: _ClassVar[int]
    GRAD_CLIP_NORM_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    ALLOW_TF32_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_EVERY_STEPS_FIELD_NUMBER: _ClassVar[int]
    SHUFFLE_BUFFER_FIELD_NUMBER: _ClassVar[int]
    NUM_WORKERS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    ALLOW_KERNEL_FALLBACK_FIELD_NUMBER: _ClassVar[int]
    LOG_EVERY_STEPS_FIELD_NUMBER: _ClassVar[int]
    ID_BIAS_LR_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_WIDE_LR_FIELD_NUMBER: _ClassVar[int]
    PREFIT_WIDE_FIELD_NUMBER: _ClassVar[int]
    dense_optimizer: OptimizerConfig
    sparse_optimizer: SparseOptimizerConfig
    batch_token_budget: int
    epochs: int
    max_steps: int
    warmup_steps: int
    grad_clip_norm: float
    precision: Precision
    allow_tf32: bool
    checkpoint_every_steps: int
    shuffle_buffer: int
    num_workers: int
    seed: int
    device: str
    allow_kernel_fallback: bool
    log_every_steps: int
    id_bias_lr: float
    summary_wide_lr: float
    prefit_wide: bool
    def __init__(self, dense_optimizer: _Optional[_Union[OptimizerConfig, _Mapping]] = ..., sparse_optimizer: _Optional[_Union[SparseOptimizerConfig, _Mapping]] = ..., batch_token_budget: _Optional[int] = ..., epochs: _Optional[int] = ..., max_steps: _Optional[int] = ..., warmup_steps: _Optional[int] = ..., grad_clip_norm: _Optional[float] = ..., precision: _Optional[_Union[Precision, str]] = ..., allow_tf32: _Optional[bool] = ..., checkpoint_every_steps: _Optional[int] = ..., shuffle_buffer: _Optional[int] = ..., num_workers: _Optional[int] = ..., seed: _Optional[int] = ..., device: _Optional[str] = ..., allow_kernel_fallback: _Optional[bool] = ..., log_every_steps: _Optional[int] = ..., id_bias_lr: _Optional[float] = ..., summary_wide_lr: _Optional[float] = ..., prefit_wide: _Optional[bool] = ...) -> None: ...

class EvalConfig(_message.Message):
    __slots__ = ("batch_token_budget", "grouped_auc")
    BATCH_TOKEN_BUDGET_FIELD_NUMBER: _ClassVar[int]
    GROUPED_AUC_FIELD_NUMBER: _ClassVar[int]
    batch_token_budget: int
    grouped_auc: bool
    def __init__(self, batch_token_budget: _Optional[int] = ..., grouped_auc: _Optional[bool] = ...) -> None: ...

class TaskRule(_message.Message):
    __slots__ = ("task_name", "auc_floor", "max_regression")
    TASK_NAME_FIELD_NUMBER: _ClassVar[int]
    AUC_FLOOR_FIELD_NUMBER: _ClassVar[int]
    MAX_REGRESSION_FIELD_NUMBER: _ClassVar[int]
    task_name: str
    auc_floor: float
    max_regression: float
    def __init__(self, task_name: _Optional[str] = ..., auc_floor: _Optional[float] = ..., max_regression: _Optional[float] = ...) -> None: ...

class PromotionConfig(_message.Message):
    __slots__ = ("registered_model_name", "default_auc_floor", "default_max_regression", "task_rules", "gated_tasks")
    REGISTERED_MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_AUC_FLOOR_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_MAX_REGRESSION_FIELD_NUMBER: _ClassVar[int]
    TASK_RULES_FIELD_NUMBER: _ClassVar[int]
    GATED_TASKS_FIELD_NUMBER: _ClassVar[int]
    registered_model_name: str
    default_auc_floor: float
    default_max_regression: float
    task_rules: _containers.RepeatedCompositeFieldContainer[TaskRule]
    gated_tasks: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, registered_model_name: _Optional[str] = ..., default_auc_floor: _Optional[float] = ..., default_max_regression: _Optional[float] = ..., task_rules: _Optional[_Iterable[_Union[TaskRule, _Mapping]]] = ..., gated_tasks: _Optional[_Iterable[str]] = ...) -> None: ...

class TrackingConfig(_message.Message):
    __slots__ = ("tracking_uri", "experiment_name", "log_system_metrics")
    TRACKING_URI_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_NAME_FIELD_NUMBER: _ClassVar[int]
    LOG_SYSTEM_METRICS_FIELD_NUMBER: _ClassVar[int]
    tracking_uri: str
    experiment_name: str
    log_system_metrics: bool
    def __init__(self, tracking_uri: _Optional[str] = ..., experiment_name: _Optional[str] = ..., log_system_metrics: _Optional[bool] = ...) -> None: ...

class PipelineConfig(_message.Message):
    __slots__ = ("model_config", "feature_configs", "data_config", "train_config", "eval_config", "promotion_config", "tracking_config")
    MODEL_CONFIG_FIELD_NUMBER: _ClassVar[int]
    FEATURE_CONFIGS_FIELD_NUMBER: _ClassVar[int]
    DATA_CONFIG_FIELD_NUMBER: _ClassVar[int]
    TRAIN_CONFIG_FIELD_NUMBER: _ClassVar[int]
    EVAL_CONFIG_FIELD_NUMBER: _ClassVar[int]
    PROMOTION_CONFIG_FIELD_NUMBER: _ClassVar[int]
    TRACKING_CONFIG_FIELD_NUMBER: _ClassVar[int]
    model_config: _model_pb2.ModelConfig
    feature_configs: _containers.RepeatedCompositeFieldContainer[FeatureConfig]
    data_config: DataConfig
    train_config: TrainConfig
    eval_config: EvalConfig
    promotion_config: PromotionConfig
    tracking_config: TrackingConfig
    def __init__(self, model_config: _Optional[_Union[_model_pb2.ModelConfig, _Mapping]] = ..., feature_configs: _Optional[_Iterable[_Union[FeatureConfig, _Mapping]]] = ..., data_config: _Optional[_Union[DataConfig, _Mapping]] = ..., train_config: _Optional[_Union[TrainConfig, _Mapping]] = ..., eval_config: _Optional[_Union[EvalConfig, _Mapping]] = ..., promotion_config: _Optional[_Union[PromotionConfig, _Mapping]] = ..., tracking_config: _Optional[_Union[TrackingConfig, _Mapping]] = ...) -> None: ...
