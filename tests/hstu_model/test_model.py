import copy
import dataclasses
import logging
from pathlib import Path

import pytest
import torch
from samples import make_rows, small_config, small_tables

from components.config import load_config, parse_config
from hstu_model import backend as backend_module
from hstu_model.backend import resolve_backend
from hstu_model.batch import collate
from hstu_model.config_text import ConfigError
from hstu_model.losses import multitask_loss
from hstu_model.model import build_model


def _spec_config(kernel: str = "PYTORCH"):
    config = small_tables(load_config("configs/dlrm_hstu_kuairand.config").model)
    return dataclasses.replace(config, kernel=kernel)


def _forward_backward(config, rows):
    torch.manual_seed(0)
    model = build_model(config, "cpu").train()
    batch = collate(rows, config)
    logits = model(batch)
    assert logits.shape == (batch.num_candidates, len(config.tasks))
    loss, per_task = multitask_loss(logits, batch, config.tasks)
    loss.backward()
    assert torch.isfinite(loss) and set(per_task) == {t.task_name for t in config.tasks}
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert no_grad == [], f"parameters without a finite gradient: {no_grad}"
    return model


def test_spec_config_builds_and_trains_one_step_on_cpu():
    config = _spec_config()
    model = _forward_backward(config, make_rows(3, seed=0, min_history=2, max_history=8))
    assert len(model.stu.layers) == 3 and model.stu.layers[0].split_sizes == [512, 512, 512, 512]
    assert model.tower.head.out_features == 2


def test_small_cpu_config_builds_and_trains_one_step():
    _forward_backward(small_config(), make_rows(4, seed=1, min_history=0))


def test_history_and_candidates_share_one_video_table():
    model = build_model(small_config(), "cpu")
    tables = {cfg.name: cfg.feature_names for ec in model.embeddings.collections.values()
              for cfg in ec.embedding_configs()}
    assert tables["video_id"] == ["video_id", "item_video_id"]
    assert model.embeddings.dims["item_video_id"] == 64


@pytest.mark.parametrize("change", [
    {"postprocessor": "layernorm"}, {"postprocessor": "l2norm"}, {"use_time_encoding": False},
    {"use_group_norm": False},
])
def test_documented_alternatives_run(change):
    hstu = small_config().hstu
    if "postprocessor" in change:
        hstu = dataclasses.replace(hstu, postprocessor=dataclasses.replace(hstu.postprocessor,
                                                                          kind=change["postprocessor"]))
    elif "use_time_encoding" in change:
        hstu = dataclasses.replace(hstu, positional_encoder=dataclasses.replace(
            hstu.positional_encoder, use_time_encoding=False))
    else:
        hstu = dataclasses.replace(hstu, stu=dataclasses.replace(hstu.stu, use_group_norm=False))
    model = _forward_backward(dataclasses.replace(small_config(), hstu=hstu), make_rows(2, seed=2))
    if "use_time_encoding" in change:
        assert model.positional.time_table is None


def test_unsupported_options_raise_not_supported():
    config = small_config()
    groups = dataclasses.replace(config.feature_groups, uih_action=("action_weight", "other_action"))
    with pytest.raises(ValueError, match="uih_action.*not supported"):
        build_model(dataclasses.replace(config, feature_groups=groups), "cpu")
    post = dataclasses.replace(config.hstu.postprocessor, kind="fancy")
    with pytest.raises(ValueError, match="'fancy' is not supported"):
        build_model(dataclasses.replace(config, hstu=dataclasses.replace(config.hstu, postprocessor=post)), "cpu")
    with pytest.raises(ValueError, match="embedding_tables is empty"):
        build_model(dataclasses.replace(config, embedding_tables=()), "cpu")


def test_triton_kernel_falls_back_to_pytorch_on_cpu_with_one_warning(monkeypatch, caplog):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.setattr(backend_module, "_warned", set())
    with caplog.at_level(logging.WARNING, logger="hstu_model.backend"):
        assert build_model(_spec_config("TRITON"), "cpu").backend == "pytorch"
        assert resolve_backend("TRITON", "cpu") == "pytorch"
    assert len([r for r in caplog.records if "TRITON" in r.getMessage()]) == 1
    with pytest.raises(ValueError, match="kernel TRITON cannot run on device cpu"):
        resolve_backend("TRITON", "cpu", strict=True)
    assert resolve_backend("PYTORCH", "cpu", strict=True) == "pytorch"
    with pytest.raises(ValueError, match="unknown kernel 'CUDA'"):
        resolve_backend("CUDA", "cpu")


def test_samples_without_history_or_candidates_run():
    config = small_config()
    model = build_model(config, "cpu").eval()
    no_history = make_rows(3, seed=1, max_history=0)
    with torch.no_grad():
        assert model(collate(no_history, config)).shape == (sum(len(r["item_video_id"]) for r in no_history), 2)
    rows = make_rows(3, seed=1, min_history=2)
    for col in ("item_video_id", "item_query_time", "item_action_weight", "item_watch_time"):
        rows[1][col] = []
    batch = collate(rows, config)
    with torch.no_grad():
        assert model(batch).shape == (batch.num_candidates, 2) and batch.candidate_lengths[1] == 0


def test_use_backend_switches_every_layer():
    from hstu_model.backend import use_backend

    model = build_model(small_config(), "cpu")
    use_backend(model, "triton")
    layers = [m for m in model.modules() if isinstance(getattr(m, "backend", None), str)]
    assert len(layers) == 1 + len(model.stu.layers) and {m.backend for m in layers} == {"triton"}  # model, STU layers
    use_backend(model, "pytorch")
    assert {m.backend for m in layers} == {"pytorch"}
    with pytest.raises(ValueError, match="unknown kernels backend"):
        use_backend(model, "cuda")


def test_contextual_id_dropout_hides_the_id_while_training_only():
    config = dataclasses.replace(small_config(), contextual_id_dropout=(("user_id", 0.5),))
    torch.manual_seed(0)
    model = build_model(config, "cpu")
    batch = collate(make_rows(64, seed=3), config)
    dropped = model.drop_contextual_ids(batch)
    kept = dropped.contextual["user_id"] == batch.contextual["user_id"]
    assert (dropped.contextual["user_id"][~kept] == 0).all() and 10 < int(kept.sum()) < 54, "about half dropped"
    assert all(torch.equal(dropped.contextual[f], batch.contextual[f]) for f in batch.contextual if f != "user_id")
    model.eval()
    torch.testing.assert_close(model(batch), model(batch))  # no dropout when scoring
    model.train()
    counted = copy.deepcopy(model.state_dict())  # a training forward adds its batch to the history prior's counts
    torch.manual_seed(1)
    first = model(batch)
    model.load_state_dict(counted)
    torch.manual_seed(1)
    assert torch.equal(first, model(batch)) and not torch.equal(first, model.eval()(batch))


@pytest.mark.parametrize("entry,message", [('feature_name: "video_id" rate: 0.5', "not a contextual feature"),
                                           ('feature_name: "user_id" rate: 1.0', r"must be in \[0, 1\)")])
def test_contextual_id_dropout_errors_name_the_field(entry, message):
    text = Path("configs/small_cpu.config").read_text().replace(
        "max_seq_len: 320", f"max_seq_len: 320\n        contextual_id_dropout {{ {entry} }}", 1)
    with pytest.raises(ConfigError, match=rf"contextual_id_dropout\[0\]\..*{message}"):
        parse_config(text, "dropout.config")


def test_embedding_init_std_sets_the_rows_scale_and_zero_keeps_torchrecs_default():
    base = small_config()
    for std in (0.0, 0.1):
        torch.manual_seed(0)
        model = build_model(dataclasses.replace(base, embedding_init_std=std), "cpu")
        weights = {n.split(".")[-2]: p.detach() for n, p in model.embeddings.named_parameters()}
        for table, w in weights.items():
            if std:
                assert abs(float(w.std()) - std) < 0.01, table  # N(0, std^2): thousands of draws per table
            else:  # TorchRec's U(+-sqrt(1 / rows))
                assert float(w.abs().max()) <= (1.0 / w.shape[0]) ** 0.5 + 1e-7, table


def test_embedding_init_std_must_not_be_negative():
    text = Path("configs/small_cpu.config").read_text().replace(
        "max_seq_len: 320", "max_seq_len: 320\n        embedding_init_std: -0.1", 1)
    with pytest.raises(ConfigError, match=r"init.config:\d+: model_config.dlrm_hstu.embedding_init_std: must be >= 0"):
        parse_config(text, "init.config")
    config = parse_config(Path("configs/kuairand_explicit.config").read_text(), "kuairand_explicit.config")
    assert config.model.embedding_init_std == pytest.approx(0.1)
