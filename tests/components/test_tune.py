"""``hstu tune`` end to end on the tiny planted-signal dataset (two trials as nested MLflow runs, the best
config written and valid), and the config-text editing of a trial's parameters."""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path

import pytest
from optuna.distributions import CategoricalDistribution
from train_data import small_config_text, write_samples

from components.config import ConfigError, load_config
from components.orchestration.cli import main
from components.registry.runs import PARENT_RUN_TAG
from components.registry.store import client_for
from components.training.tune import SEARCH_SPACE, WIDE_SPACE, search_space, with_params


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """Runs ``hstu tune --trials 2 --json`` once; returns (work dir, tracking URI, window, exit code, payload)."""
    work = tmp_path_factory.mktemp("tune")
    dates = write_samples(work, users=120, windows=4)
    uri = f"sqlite:///{work}/mlflow.db"
    # max_steps caps every trial (epochs are drawn from 1..6) so that two trials take seconds.
    config = work / "tune_small.config"
    config.write_text(small_config_text(work, budget=384, max_steps=8, tracking_uri=uri))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["tune", "--config", str(config), "--window", dates[-1].isoformat(), "--trials", "2", "--json"])
    return work, uri, dates[-1], code, json.loads(out.getvalue())


def test_cli_exits_0_and_prints_the_result_as_json(tuned):
    _, _, window, code, payload = tuned
    assert code == 0
    assert payload["window"] == window.isoformat() and len(payload["trials"]) == 2
    assert math.isfinite(payload["best_value"])
    assert payload["best_value"] == max(t["value"] for t in payload["trials"] if t["value"] is not None)
    assert set(payload["best_params"]) == set(SEARCH_SPACE) | set(WIDE_SPACE)  # the small config has both switches


def test_each_trial_is_a_child_run_with_params_and_objective(tuned):
    _, uri, window, _, payload = tuned
    client = client_for(uri)
    parent = client.get_run(payload["parent_run_id"])
    assert parent.info.status == "FINISHED" and parent.data.tags["window"] == window.isoformat()
    assert parent.data.metrics["tune/best_value"] == pytest.approx(payload["best_value"])
    assert "tune/best.config" in {a.path for a in client.list_artifacts(parent.info.run_id, "tune")}
    children = client.search_runs([parent.info.experiment_id],
                                  filter_string=f"tags.`{PARENT_RUN_TAG}` = '{parent.info.run_id}'")
    assert sorted(r.info.run_name for r in children) == ["trial-0", "trial-1"]
    for run in children:
        assert run.info.status == "FINISHED"
        assert {f"tune/{name}" for name in (*SEARCH_SPACE, *WIDE_SPACE)} <= set(run.data.params)
        assert "tune/objective" in run.data.metrics and "eval/is_click/auc" in run.data.metrics
    assert not client.search_model_versions("name = 'dlrm_hstu'")  # trials never register


def test_best_config_validates_and_holds_the_best_learning_rates(tuned):
    work, _, window, _, payload = tuned
    path = work / "tune" / window.isoformat() / "best.config"
    assert payload["config_path"] == str(path) and path.read_text().startswith("# hstu tune, study ")
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["config", "validate", str(path)]) == 0
    best = load_config(path)
    assert best.train.dense_optimizer.lr == pytest.approx(payload["best_params"]["dense_lr"], rel=1e-6)
    assert best.train.sparse_optimizer.lr == pytest.approx(payload["best_params"]["sparse_lr"], rel=1e-6)
    assert best.data.work_dir == str(work) and best.train.max_steps == 8  # the rest is the study's config


def test_trials_leave_no_run_folders_behind(tuned):
    work, _, window, _, payload = tuned
    assert not (work / "runs").exists()  # a trial's checkpoints and results never land in the daily run's folder
    assert not (work / "tune" / window.isoformat() / payload["parent_run_id"]).exists()


def test_with_params_writes_the_values_into_the_config_text(base_config):
    config = with_params(base_config, {"dense_lr": 0.005, "epochs": 2, "stu_output_dropout": 0.1,
                                       "dense_weight_decay": 0.0})
    assert config.train.dense_optimizer.lr == 0.005 and config.train.epochs == 2
    assert config.model.hstu.stu.output_dropout_ratio == 0.1
    assert "lr: 0.005" in config.text and config.train.sparse_optimizer.lr == base_config.train.sparse_optimizer.lr
    assert with_params(base_config, {"embedding_init_std": 0.1}).model.embedding_init_std == pytest.approx(0.1)


def test_every_search_space_field_exists_in_the_config(base_config):
    lows = {name: p.distribution.choices[0] if isinstance(p.distribution, CategoricalDistribution)
            else p.distribution.low for name, p in search_space(base_config).items()}
    assert with_params(base_config, lows).train.epochs == 1


def test_an_unknown_parameter_is_named(base_config):
    with pytest.raises(ValueError, match="unknown tuning parameter 'dense_learning_rate'; the search space has"):
        with_params(base_config, {"dense_learning_rate": 0.01})


def test_an_invalid_value_names_the_field(base_config):
    with pytest.raises(ConfigError, match=r"model_config\.dlrm_hstu\.hstu\.stu\.output_dropout_ratio: must be in"):
        with_params(base_config, {"stu_output_dropout": 1.5})
    with pytest.raises(ValueError, match=r"epochs \(train_config\.epochs\) must be a finite integer, got 2\.5"):
        with_params(base_config, {"epochs": 2.5})
    with pytest.raises(ValueError, match=r"dense_lr .* must be a finite number, got 'fast'"):
        with_params(base_config, {"dense_lr": "fast"})


def test_the_wide_rates_are_searched_only_where_the_tower_has_the_wide_part(base_config):
    assert set(WIDE_SPACE) <= set(search_space(base_config))
    tuned = with_params(base_config, {"id_bias_lr": 0.2, "summary_wide_lr": 0.01})
    assert (tuned.train.id_bias_lr, tuned.train.summary_wide_lr) == (0.2, 0.01)
    spec = load_config(Path(__file__).resolve().parents[2] / "configs" / "dlrm_hstu_kuairand.config")
    assert not spec.model.tower.id_bias and not set(WIDE_SPACE) & set(search_space(spec))
    with pytest.raises(ValueError, match="unknown tuning parameter 'id_bias_lr'"):
        with_params(spec, {"id_bias_lr": 0.2})
