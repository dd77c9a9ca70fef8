from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FeatureGroupType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DEEP: _ClassVar[FeatureGroupType]
    WIDE: _ClassVar[FeatureGroupType]
    SEQUENCE: _ClassVar[FeatureGroupType]
    JAGGED_SEQUENCE: _ClassVar[FeatureGroupType]

class Kernel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRITON: _ClassVar[Kernel]
    PYTORCH: _ClassVar[Kernel]
DEEP: FeatureGroupType
WIDE: FeatureGroupType
SEQUENCE: FeatureGroupType
JAGGED_SEQUENCE: FeatureGroupType
TRITON: Kernel
PYTORCH: Kernel

class FeatureGroupConfig(_message.Message):
    __slots__ = ("group_name", "feature_names", "group_type")
    GROUP_NAME_FIELD_NUMBER: _ClassVar[int]
    FEATURE_NAMES_FIELD_NUMBER: _ClassVar[int]
    GROUP_TYPE_FIELD_NUMBER: _ClassVar[int]
    group_name: str
    feature_names: _containers.RepeatedScalarFieldContainer[str]
    group_type: FeatureGroupType
    def __init__(self, group_name: _Optional[str] = ..., feature_names: _Optional[_Iterable[str]] = ..., group_type: _Optional[_Union[FeatureGroupType, str]] = ...) -> None: ...

class StuConfig(_message.Message):
    __slots__ = ("embedding_dim", "num_heads", "hidden_dim", "attention_dim", "output_dropout_ratio", "use_group_norm")
    EMBEDDING_DIM_FIELD_NUMBER: _ClassVar[int]
    NUM_HEADS_FIELD_NUMBER: _ClassVar[int]
    HIDDEN_DIM_FIELD_NUMBER: _ClassVar[int]
    ATTENTION_DIM_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_DROPOUT_RATIO_FIELD_NUMBER: _ClassVar[int]
    USE_GROUP_NORM_FIELD_NUMBER: _ClassVar[int]
    embedding_dim: int
    num_heads: int
    hidden_dim: int
    attention_dim: int
    output_dropout_ratio: float
    use_group_norm: bool
    def __init__(self, embedding_dim: _Optional[int] = ..., num_heads: _Optional[int] = ..., hidden_dim: _Optional[int] = ..., attention_dim: _Optional[int] = ..., output_dropout_ratio: _Optional[float] = ..., use_group_norm: _Optional[bool] = ...) -> None: ...

class PositionalEncoderConfig(_message.Message):
    __slots__ = ("num_position_buckets", "num_time_buckets", "use_time_encoding")
    NUM_POSITION_BUCKETS_FIELD_NUMBER: _ClassVar[int]
    NUM_TIME_BUCKETS_FIELD_NUMBER: _ClassVar[int]
    USE_TIME_ENCODING_FIELD_NUMBER: _ClassVar[int]
    num_position_buckets: int
    num_time_buckets: int
    use_time_encoding: bool
    def __init__(self, num_position_buckets: _Optional[int] = ..., num_time_buckets: _Optional[int] = ..., use_time_encoding: _Optional[bool] = ...) -> None: ...

class SimpleActionEncoder(_message.Message):
    __slots__ = ("action_embedding_dim", "action_weights")
    ACTION_EMBEDDING_DIM_FIELD_NUMBER: _ClassVar[int]
    ACTION_WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    action_embedding_dim: int
    action_weights: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, action_embedding_dim: _Optional[int] = ..., action_weights: _Optional[_Iterable[int]] = ...) -> None: ...

class ActionEncoderConfig(_message.Message):
    __slots__ = ("simple_action_encoder",)
    SIMPLE_ACTION_ENCODER_FIELD_NUMBER: _ClassVar[int]
    simple_action_encoder: SimpleActionEncoder
    def __init__(self, simple_action_encoder: _Optional[_Union[SimpleActionEncoder, _Mapping]] = ...) -> None: ...

class SimpleMlp(_message.Message):
    __slots__ = ("hidden_dim",)
    HIDDEN_DIM_FIELD_NUMBER: _ClassVar[int]
    hidden_dim: int
    def __init__(self, hidden_dim: _Optional[int] = ...) -> None: ...

class MlpConfig(_message.Message):
    __slots__ = ("simple_mlp",)
    SIMPLE_MLP_FIELD_NUMBER: _ClassVar[int]
    simple_mlp: SimpleMlp
    def __init__(self, simple_mlp: _Optional[_Union[SimpleMlp, _Mapping]] = ...) -> None: ...

class SliceContentEncoder(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PadContentEncoder(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ContentEncoderConfig(_message.Message):
    __slots__ = ("slice_content_encoder", "pad_content_encoder")
    SLICE_CONTENT_ENCODER_FIELD_NUMBER: _ClassVar[int]
    PAD_CONTENT_ENCODER_FIELD_NUMBER: _ClassVar[int]
    slice_content_encoder: SliceContentEncoder
    pad_content_encoder: PadContentEncoder
    def __init__(self, slice_content_encoder: _Optional[_Union[SliceContentEncoder, _Mapping]] = ..., pad_content_encoder: _Optional[_Union[PadContentEncoder, _Mapping]] = ...) -> None: ...

class ContextualPreprocessor(_message.Message):
    __slots__ = ("action_encoder", "action_mlp", "content_encoder", "content_mlp")
    ACTION_ENCODER_FIELD_NUMBER: _ClassVar[int]
    ACTION_MLP_FIELD_NUMBER: _ClassVar[int]
    CONTENT_ENCODER_FIELD_NUMBER: _ClassVar[int]
    CONTENT_MLP_FIELD_NUMBER: _ClassVar[int]
    action_encoder: ActionEncoderConfig
    action_mlp: MlpConfig
    content_encoder: ContentEncoderConfig
    content_mlp: MlpConfig
    def __init__(self, action_encoder: _Optional[_Union[ActionEncoderConfig, _Mapping]] = ..., action_mlp: _Optional[_Union[MlpConfig, _Mapping]] = ..., content_encoder: _Optional[_Union[ContentEncoderConfig, _Mapping]] = ..., content_mlp: _Optional[_Union[MlpConfig, _Mapping]] = ...) -> None: ...

class InputPreprocessorConfig(_message.Message):
    __slots__ = ("contextual_preprocessor", "contextual_interleave_preprocessor")
    CONTEXTUAL_PREPROCESSOR_FIELD_NUMBER: _ClassVar[int]
    CONTEXTUAL_INTERLEAVE_PREPROCESSOR_FIELD_NUMBER: _ClassVar[int]
    contextual_preprocessor: ContextualPreprocessor
    contextual_interleave_preprocessor: ContextualPreprocessor
    def __init__(self, contextual_preprocessor: _Optional[_Union[ContextualPreprocessor, _Mapping]] = ..., contextual_interleave_preprocessor: _Optional[_Union[ContextualPreprocessor, _Mapping]] = ...) -> None: ...

class TimestampLayerNormPostprocessor(_message.Message):
    __slots__ = ("time_duration_period_units", "time_duration_units_per_period")
    TIME_DURATION_PERIOD_UNITS_FIELD_NUMBER: _ClassVar[int]
    TIME_DURATION_UNITS_PER_PERIOD_FIELD_NUMBER: _ClassVar[int]
    time_duration_period_units: _containers.RepeatedScalarFieldContainer[int]
    time_duration_units_per_period: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, time_duration_period_units: _Optional[_Iterable[int]] = ..., time_duration_units_per_period: _Optional[_Iterable[int]] = ...) -> None: ...

class LayerNormPostprocessor(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class L2NormPostprocessor(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class OutputPostprocessorConfig(_message.Message):
    __slots__ = ("timestamp_layernorm_postprocessor", "layernorm_postprocessor", "l2norm_postprocessor")
    TIMESTAMP_LAYERNORM_POSTPROCESSOR_FIELD_NUMBER: _ClassVar[int]
    LAYERNORM_POSTPROCESSOR_FIELD_NUMBER: _ClassVar[int]
    L2NORM_POSTPROCESSOR_FIELD_NUMBER: _ClassVar[int]
    timestamp_layernorm_postprocessor: TimestampLayerNormPostprocessor
    layernorm_postprocessor: LayerNormPostprocessor
    l2norm_postprocessor: L2NormPostprocessor
    def __init__(self, timestamp_layernorm_postprocessor: _Optional[_Union[TimestampLayerNormPostprocessor, _Mapping]] = ..., layernorm_postprocessor: _Optional[_Union[LayerNormPostprocessor, _Mapping]] = ..., l2norm_postprocessor: _Optional[_Union[L2NormPostprocessor, _Mapping]] = ...) -> None: ...

class HstuConfig(_message.Message):
    __slots__ = ("stu", "input_dropout_ratio", "attn_num_layers", "positional_encoder", "input_preprocessor", "output_postprocessor")
    STU_FIELD_NUMBER: _ClassVar[int]
    INPUT_DROPOUT_RATIO_FIELD_NUMBER: _ClassVar[int]
    ATTN_NUM_LAYERS_FIELD_NUMBER: _ClassVar[int]
    POSITIONAL_ENCODER_FIELD_NUMBER: _ClassVar[int]
    INPUT_PREPROCESSOR_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_POSTPROCESSOR_FIELD_NUMBER: _ClassVar[int]
    stu: StuConfig
    input_dropout_ratio: float
    attn_num_layers: int
    positional_encoder: PositionalEncoderConfig
    input_preprocessor: InputPreprocessorConfig
    output_postprocessor: OutputPostprocessorConfig
    def __init__(self, stu: _Optional[_Union[StuConfig, _Mapping]] = ..., input_dropout_ratio: _Optional[float] = ..., attn_num_layers: _Optional[int] = ..., positional_encoder: _Optional[_Union[PositionalEncoderConfig, _Mapping]] = ..., input_preprocessor: _Optional[_Union[InputPreprocessorConfig, _Mapping]] = ..., output_postprocessor: _Optional[_Union[OutputPostprocessorConfig, _Mapping]] = ...) -> None: ...

class MlpTowerConfig(_message.Message):
    __slots__ = ("hidden_units", "activation", "use_ln", "use_bn", "dropout_ratio")
    HIDDEN_UNITS_FIELD_NUMBER: _ClassVar[int]
    ACTIVATION_FIELD_NUMBER: _ClassVar[int]
    USE_LN_FIELD_NUMBER: _ClassVar[int]
    USE_BN_FIELD_NUMBER: _ClassVar[int]
    DROPOUT_RATIO_FIELD_NUMBER: _ClassVar[int]
    hidden_units: _containers.RepeatedScalarFieldContainer[int]
    activation: str
    use_ln: bool
    use_bn: bool
    dropout_ratio: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, hidden_units: _Optional[_Iterable[int]] = ..., activation: _Optional[str] = ..., use_ln: _Optional[bool] = ..., use_bn: _Optional[bool] = ..., dropout_ratio: _Optional[_Iterable[float]] = ...) -> None: ...

class BinaryCrossEntropy(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class L2Loss(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LossConfig(_message.Message):
    __slots__ = ("binary_cross_entropy", "l2_loss")
    BINARY_CROSS_ENTROPY_FIELD_NUMBER: _ClassVar[int]
    L2_LOSS_FIELD_NUMBER: _ClassVar[int]
    binary_cross_entropy: BinaryCrossEntropy
    l2_loss: L2Loss
    def __init__(self, binary_cross_entropy: _Optional[_Union[BinaryCrossEntropy, _Mapping]] = ..., l2_loss: _Optional[_Union[L2Loss, _Mapping]] = ...) -> None: ...

class AUC(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GroupedAUC(_message.Message):
    __slots__ = ("grouping_key",)
    GROUPING_KEY_FIELD_NUMBER: _ClassVar[int]
    grouping_key: str
    def __init__(self, grouping_key: _Optional[str] = ...) -> None: ...

class MetricConfig(_message.Message):
    __slots__ = ("auc", "grouped_auc")
    AUC_FIELD_NUMBER: _ClassVar[int]
    GROUPED_AUC_FIELD_NUMBER: _ClassVar[int]
    auc: AUC
    grouped_auc: GroupedAUC
    def __init__(self, auc: _Optional[_Union[AUC, _Mapping]] = ..., grouped_auc: _Optional[_Union[GroupedAUC, _Mapping]] = ...) -> None: ...

class TaskConfig(_message.Message):
    __slots__ = ("task_name", "label_name", "task_bitmask", "losses", "metrics", "weight")
    TASK_NAME_FIELD_NUMBER: _ClassVar[int]
    LABEL_NAME_FIELD_NUMBER: _ClassVar[int]
    TASK_BITMASK_FIELD_NUMBER: _ClassVar[int]
    LOSSES_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    task_name: str
    label_name: str
    task_bitmask: int
    losses: _containers.RepeatedCompositeFieldContainer[LossConfig]
    metrics: _containers.RepeatedCompositeFieldContainer[MetricConfig]
    weight: float
    def __init__(self, task_name: _Optional[str] = ..., label_name: _Optional[str] = ..., task_bitmask: _Optional[int] = ..., losses: _Optional[_Iterable[_Union[LossConfig, _Mapping]]] = ..., metrics: _Optional[_Iterable[_Union[MetricConfig, _Mapping]]] = ..., weight: _Optional[float] = ...) -> None: ...

class FusionMtlTowerConfig(_message.Message):
    __slots__ = ("mlp", "task_configs", "history_summary", "id_bias")
    MLP_FIELD_NUMBER: _ClassVar[int]
    TASK_CONFIGS_FIELD_NUMBER: _ClassVar[int]
    HISTORY_SUMMARY_FIELD_NUMBER: _ClassVar[int]
    ID_BIAS_FIELD_NUMBER: _ClassVar[int]
    mlp: MlpTowerConfig
    task_configs: _containers.RepeatedCompositeFieldContainer[TaskConfig]
    history_summary: bool
    id_bias: bool
    def __init__(self, mlp: _Optional[_Union[MlpTowerConfig, _Mapping]] = ..., task_configs: _Optional[_Iterable[_Union[TaskConfig, _Mapping]]] = ..., history_summary: _Optional[bool] = ..., id_bias: _Optional[bool] = ...) -> None: ...

class ContextualIdDropout(_message.Message):
    __slots__ = ("feature_name", "rate")
    FEATURE_NAME_FIELD_NUMBER: _ClassVar[int]
    RATE_FIELD_NUMBER: _ClassVar[int]
    feature_name: str
    rate: float
    def __init__(self, feature_name: _Optional[str] = ..., rate: _Optional[float] = ...) -> None: ...

class DlrmHstuConfig(_message.Message):
    __slots__ = ("hstu", "fusion_mtl_tower", "max_seq_len", "contextual_id_dropout", "embedding_init_std")
    HSTU_FIELD_NUMBER: _ClassVar[int]
    FUSION_MTL_TOWER_FIELD_NUMBER: _ClassVar[int]
    MAX_SEQ_LEN_FIELD_NUMBER: _ClassVar[int]
    CONTEXTUAL_ID_DROPOUT_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_INIT_STD_FIELD_NUMBER: _ClassVar[int]
    hstu: HstuConfig
    fusion_mtl_tower: FusionMtlTowerConfig
    max_seq_len: int
    contextual_id_dropout: _containers.RepeatedCompositeFieldContainer[ContextualIdDropout]
    embedding_init_std: float
    def __init__(self, hstu: _Optional[_Union[HstuConfig, _Mapping]] = ..., fusion_mtl_tower: _Optional[_Union[FusionMtlTowerConfig, _Mapping]] = ..., max_seq_len: _Optional[int] = ..., contextual_id_dropout: _Optional[_Iterable[_Union[ContextualIdDropout, _Mapping]]] = ..., embedding_init_std: _Optional[float] = ...) -> None: ...

class ModelConfig(_message.Message):
    __slots__ = ("feature_groups", "dlrm_hstu", "kernel")
    FEATURE_GROUPS_FIELD_NUMBER: _ClassVar[int]
    DLRM_HSTU_FIELD_NUMBER: _ClassVar[int]
    KERNEL_FIELD_NUMBER: _ClassVar[int]
    feature_groups: _containers.RepeatedCompositeFieldContainer[FeatureGroupConfig]
    dlrm_hstu: DlrmHstuConfig
    kernel: Kernel
    def __init__(self, feature_groups: _Optional[_Iterable[_Union[FeatureGroupConfig, _Mapping]]] = ..., dlrm_hstu: _Optional[_Union[DlrmHstuConfig, _Mapping]] = ..., kernel: _Optional[_Union[Kernel, str]] = ...) -> None: ...
