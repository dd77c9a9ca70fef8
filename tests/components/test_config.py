"""The pipeline config: the spec's block parses verbatim, round-trips, and bad configs fail precisely."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from components.config import load_config, parse_config
from hstu_model.config_text import ConfigError

REPO = Path(__file__).resolve().parents[2]
SPEC_CONFIG = REPO / "configs" / "dlrm_hstu_kuairand.config"
SMALL_CONFIG = REPO / "configs" / "small_cpu.config"
DEMO_CONFIG = REPO / "configs" / "demo.config"


def _spec_block() -> str:
    """The model_config block exactly as the spec document gives it."""
    spec = REPO.parent / "shared" / "spec" / "dlrm_hstu.md"
    if spec.exists():
        return spec.read_text().split("```protobuf")[1].split("```")[0]
    text = SPEC_CONFIG.read_text()  # the example config holds the block verbatim
    return text[text.index("model_config {"): text.index("\ndata_config")]


def test_spec_block_alone_is_a_valid_config_with_spec_values():
    cfg = parse_config(_spec_block(), "spec")
    stu = cfg.model.hstu.stu
    assert (stu.embedding_dim, stu.num_heads, stu.hidden_dim, stu.attention_dim) == (512, 4, 128, 128)
    assert stu.output_dropout_ratio == 0.1 and stu.use_group_norm
    assert cfg.model.hstu.input_dropout_ratio == 0.2 and cfg.model.hstu.attn_num_layers == 3
    assert cfg.model.hstu.preprocessor.action_weights == (1, 2, 4, 8, 16, 32, 64, 128)
    assert cfg.model.hstu.postprocessor.time_duration_units_per_period == (24, 7)
    assert cfg.model.tower.activation == "nn.SiLU" and cfg.model.tower.use_ln
    assert [(t.task_name, t.task_bitmask) for t in cfg.model.tasks] == [("is_click", 1), ("is_like", 2)]
    assert cfg.model.max_seq_len == 8000 and cfg.model.kernel == "TRITON"
    assert cfg.data.max_uih_len == 512 and cfg.promotion.registered_model_name == "dlrm_hstu"


def test_kernel_defaults_to_pytorch():
    cfg = parse_config(_spec_block().replace("kernel: TRITON", ""), "spec")
    assert cfg.model.kernel == "PYTORCH"


@pytest.mark.parametrize("path", [SPEC_CONFIG, SMALL_CONFIG, DEMO_CONFIG], ids=lambda p: p.name)
def test_resolved_config_round_trips(path):
    cfg = load_config(path)
    again = parse_config(cfg.text, "resolved")
    assert again.model == cfg.model and again.data == cfg.data and again.train == cfg.train
    assert again.text == cfg.text
    assert "output_dropout_ratio" in cfg.text and "batch_token_budget" in cfg.text  # defaults are shown


def test_the_demo_config_is_the_small_one_with_the_tag_at_query_time():
    demo, small = load_config(DEMO_CONFIG), load_config(SMALL_CONFIG)
    assert demo.model.feature_groups.uih == ("video_id", "video_tag")
    assert demo.model.feature_groups.candidate == ("item_video_id", "item_video_tag")
    assert demo.data.history_mode == "QUERY_TIME" and demo.model.query_time
    assert demo.model.hstu == small.model.hstu and demo.model.tasks == small.model.tasks


def test_video_id_table_is_shared_by_history_and_candidates():
    tables = {t.name: t for t in load_config(SMALL_CONFIG).model.embedding_tables}
    assert tables["video_id"].feature_names == ("video_id", "item_video_id")


def _line_of(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n") + 1


# (name, replace this, with that, expected field path (regex), error text (regex), line anchor or None)
BAD = [
    ("unknown_field", "num_heads: 4", "num_head: 4", "", r'no field named "num_head"', "num_head: 4"),
    ("wrong_type", "num_heads: 4", "num_heads: four", "", r"Couldn't parse integer", "num_heads: four"),
    ("bad_enum", "kernel: TRITON", "kernel: CUDA", "", r"CUDA", "kernel: CUDA"),
    ("syntax", "max_seq_len: 8000", "max_seq_len 8000", "", r'Expected ":"', "max_seq_len 8000"),
    ("group_name", '"candidate_timestamp"', '"candidate_time"',
     r"feature_groups\[6\]\.group_name", r"unknown group 'candidate_time'", '"candidate_time"'),
    ("group_type", 'feature_names: "video_id"\n        group_type: JAGGED_SEQUENCE',
     'feature_names: "video_id"\n        group_type: DEEP', r"feature_groups\[1\]\.group_type",
     r"must be JAGGED_SEQUENCE", 'feature_names: "video_id"\n        group_type: DEEP'),
    ("zero_heads", "num_heads: 4", "num_heads: 0", r"stu\.num_heads", r"must be > 0, got 0", "num_heads: 0"),
    ("dropout_range", "output_dropout_ratio: 0.1", "output_dropout_ratio: 1.5", r"stu\.output_dropout_ratio",
     r"\[0, 1\)", "output_dropout_ratio: 1.5"),
    ("action_weight_bits", "[1, 2, 4, 8, 16, 32, 64, 128]", "[1, 2, 3, 8]",
     r"action_weights\[2\]", r"powers of two.*got 3", "[1, 2, 3, 8]"),
    ("duplicate_bitmask", "task_bitmask: 2", "task_bitmask: 1", r"task_configs\[1\]\.task_bitmask",
     r"already used", 'task_name: "is_like"\n                label_name: "item_action_weight"\n'
     "                task_bitmask: 1"),
    ("zero_bitmask", "task_bitmask: 2", "task_bitmask: 0", r"task_configs\[1\]\.task_bitmask", r"non-zero",
     "task_bitmask: 0"),
    ("activation", '"nn.SiLU"', '"nn.Swish"', r"fusion_mtl_tower\.mlp\.activation", r"unknown activation",
     '"nn.Swish"'),
    ("unsupported_encoder", "slice_content_encoder {}", "pad_content_encoder {}",
     r"content_encoder\.pad_content_encoder", r"not supported", "pad_content_encoder"),
    ("seq_budget", "max_seq_len: 8000", "max_seq_len: 100", r"data_config\.max_uih_len",
     r"exceeds max_seq_len 100", None),
    ("uih_side_feature", 'feature_names: "video_id"\n', 'feature_names: "video_id"\n        feature_names: "video_tag"\n',
     r"feature_groups\[1\]\.feature_names", r"at most one side feature of \['video_tag'\].*item_f", None),
    ("unknown_side_feature", 'feature_names: "video_id"\n', 'feature_names: "video_id"\n        feature_names: "video_author"\n',
     r"feature_groups\[1\]\.feature_names", r"at most one side feature", None),
    ("grouping_key", "auc {}", 'grouped_auc { grouping_key: "device_id" }',
     r"task_configs\[0\]\.metrics\[0\]\.grouped_auc\.grouping_key", r"only 'user_id'", None),
    ("time_periods", "time_duration_units_per_period: [24, 7]", "time_duration_units_per_period: [24]",
     r"time_duration_units_per_period", r"one entry per period", "time_duration_units_per_period: [24]"),
]


@pytest.mark.parametrize("name,old,new,field,message,anchor", BAD, ids=[b[0] for b in BAD])
def test_bad_config_names_field_and_line(name, old, new, field, message, anchor):
    text = _spec_block()
    assert old in text, f"test setup: {old!r} not in the spec block"
    bad = text.replace(old, new, 1)
    with pytest.raises(ConfigError) as info:
        parse_config(bad, "bad.config")
    err = info.value
    assert re.search(message, str(err)), str(err)
    if field:
        assert re.search(field, err.field_path), err.field_path
    if anchor is not None:
        expected = _line_of(bad, anchor) + anchor.count("\n")  # the anchor's last line
        assert err.line == expected, (str(err), expected)
        assert str(err).startswith(f"bad.config:{expected}:")


def test_the_video_tag_side_feature_is_accepted_in_both_groups():
    text = _spec_block().replace('feature_names: "video_id"\n', 'feature_names: "video_id"\n        feature_names: "video_tag"\n', 1)
    text = text.replace('feature_names: "item_video_id"\n',
                        'feature_names: "item_video_id"\n        feature_names: "item_video_tag"\n', 1)
    config = parse_config(text, "side.config")
    assert config.model.feature_groups.uih == ("video_id", "video_tag")
    assert config.model.feature_groups.candidate == ("item_video_id", "item_video_tag")


def test_bad_configs_give_distinct_errors():
    messages = set()
    for _, old, new, *_ in BAD:
        with pytest.raises(ConfigError) as info:
            parse_config(_spec_block().replace(old, new, 1), "bad.config")
        messages.add(str(info.value))
    assert len(messages) == len(BAD)


def test_pipeline_sections_are_checked():
    base = _spec_block()
    cases = {
        'promotion_config { task_rules { task_name: "is_share" auc_floor: 0.6 } }': r"unknown task 'is_share'",
        'data_config { events_format: "json" }': r"events_format.*'json'",
        'train_config { dense_optimizer { name: "sgd" } }': r"dense_optimizer\.name",
        'data_config { column_mapping { action_rules { action: "is_star" when: "true" } } }': r"unknown action",
        'feature_configs { id_feature { feature_name: "author_id" } }': r"in no feature group",
        # 6 + 7800 + 100 fits 8000, but query-time history holds each candidate's event twice
        'data_config { history_mode: QUERY_TIME max_uih_len: 7800 max_candidates: 100 }':
            r"2 \* max_candidates \(100\) = 8006 exceeds",
        'train_config { id_bias_lr: 0.3 }': r"id_bias_lr: is set but fusion_mtl_tower\.id_bias is off",
        'train_config { summary_wide_lr: -0.1 }': r"summary_wide_lr: must be >= 0",
        'train_config { prefit_wide: true }': r"prefit_wide: is set but fusion_mtl_tower\.history_summary is off",
        'data_config { item_counter_days: 31 }': r"item_counter_days: must be at most 30",
        'data_config { item_counter_days: 3 }': r"item_counter_days: needs fusion_mtl_tower \{ history_summary",
    }
    for extra, message in cases.items():
        with pytest.raises(ConfigError, match=message) as info:
            parse_config(base + "\n" + extra + "\n", "x.config")
        assert info.value.line == base.count("\n") + 2, str(info.value)


def test_missing_model_config_is_an_error():
    with pytest.raises(ConfigError, match="model_config"):
        parse_config("data_config { max_uih_len: 10 }\n")


def test_column_mapping_is_parsed():
    extra = """
data_config {
  column_mapping {
    user_id: "user" video_id: "item" time: "unix_ts" time_unit: "s"
    action_rules { action: "is_click" when: "true" }
    action_rules { action: "is_like" when: "rating >= 4" }
  }
}
"""
    mapping = parse_config(_spec_block() + extra).data.column_mapping
    assert (mapping.user_id, mapping.video_id, mapping.time, mapping.time_unit) == ("user", "item", "unix_ts", "s")
    assert [(r.action, r.when) for r in mapping.action_rules] == [("is_click", "true"), ("is_like", "rating >= 4")]


def test_run_overrides_apply_and_validate():
    from components.config import apply_overrides

    cfg = load_config(SMALL_CONFIG)
    out = apply_overrides(cfg, kernel="TRITON", train_windows=5, auc_floors={"is_like": 0.6}, max_regression=0.0)
    assert out.model.kernel == "TRITON" and out.data.train_windows == 5
    assert "kernel: TRITON" in out.text and "train_windows: 5" in out.text  # the logged config shows them
    assert out.promotion.rule("is_like").auc_floor == 0.6 and out.promotion.rule("is_like").max_regression == 0.0
    assert out.promotion.rule("is_click").auc_floor == cfg.promotion.default_auc_floor
    assert out.promotion.rule("is_click").max_regression == 0.0
    with pytest.raises(ConfigError, match="unknown task 'is_share'"):
        apply_overrides(cfg, auc_floors={"is_share": 0.5})
    with pytest.raises(ConfigError, match="TRITON or PYTORCH"):
        apply_overrides(cfg, kernel="CUDA")
    with pytest.raises(ConfigError, match="must be >= 0"):
        apply_overrides(cfg, max_regression=-0.1)


def test_resolved_config_with_feature_sizes_round_trips():
    extra = '\nfeature_configs { id_feature { feature_name: "video_id" num_buckets: 8000 embedding_dim: 32 } }\n'
    cfg = parse_config(_spec_block() + extra)
    again = parse_config(cfg.text)
    assert again.features == cfg.features
    table = next(t for t in again.model.embedding_tables if t.name == "video_id")
    assert (table.num_embeddings, table.embedding_dim) == (8000, 32)
    with pytest.raises(ConfigError, match="not both"):
        parse_config(_spec_block() + extra.replace("num_buckets: 8000", "num_buckets: 8000 hash_bucket_size: 9"))


def test_id_features_default_to_vocabularies_and_hash_only_when_asked():
    cfg = parse_config(_spec_block() + '\nfeature_configs { id_feature { feature_name: "user_id" hash_bucket_size: 500 } }\n')
    tables = {t.name: t for t in cfg.model.embedding_tables}
    assert (tables["user_id"].num_embeddings, tables["user_id"].hashed) == (500, True)
    assert (tables["video_id"].num_embeddings, tables["video_id"].hashed) == (100_000, False)
    assert tables["video_id"].feature_names == ("video_id", "item_video_id")
    assert parse_config(cfg.text).model.embedding_tables == cfg.model.embedding_tables


@pytest.mark.parametrize("entries, field, message", [
    ('feature_name: "video_id" num_buckets: 1', "feature_configs[0].id_feature.num_buckets", "must be >= 2"),
    ('feature_name: "video_id" num_buckets: 9 } } feature_configs { id_feature { feature_name: "item_video_id" '
     'hash_bucket_size: 9', "feature_configs[1].id_feature", "shares table 'video_id' with 'video_id'"),
    ('feature_name: "user_id" num_buckets: 9 } } feature_configs { id_feature { feature_name: "user_id" '
     'num_buckets: 10', "feature_configs[1].id_feature.feature_name", "configured twice"),
])
def test_inconsistent_id_features_name_the_field(entries, field, message):
    with pytest.raises(ConfigError, match=message) as err:
        parse_config(_spec_block() + f"\nfeature_configs {{ id_feature {{ {entries} }} }}\n")
    assert field in str(err.value)
