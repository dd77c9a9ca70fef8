"""The trainer end to end on a tiny planted-signal dataset: learning, MLflow run and registry, model reload in a
fresh process, kill-and-resume equivalence, a tracking server that is down, and torchrun with 2 processes."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from train_data import REPO, small_config, small_config_text, write_samples

from components.config import parse_config
from components.data.id_vocab import ID_VOCAB_FILE, parse_model_vocab
from components.data.windows import sample_files
from components.registry.store import TrackingUnavailableError, client_for
from components.training.evaluate import evaluate_uri
from components.training.train import ID_ROWS_FILE, TrainingInterrupted, train
from hstu_model.batch import collate
from hstu_model.id_rows import IdRows
from hstu_model.model import build_model

DEAD_SERVER = "http://127.0.0.1:9"  # the discard port: nothing listens, connections are refused at once


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    work = tmp_path_factory.mktemp("train")
    dates = write_samples(work, users=240, windows=4)
    config = small_config(work, budget=384, epochs=5, checkpoint_every=50, tracking_uri=f"sqlite:///{work}/mlflow.db")
    result = train(config=config, eval_window=dates[-1], tags={"dag_id": "test_dag", "dag_run_id": "r1"})
    return config, dates, result


def test_training_learns_the_planted_signal(trained):
    _, dates, result = trained
    assert result.steps > 200 and result.train_windows == [d.isoformat() for d in dates[:-1]]
    assert result.metrics["eval/is_click/auc"] > 0.6, result.metrics
    first, last = result.loss_curve[0][1], result.loss_curve[-1][1]
    assert last < first


def test_local_results_are_written(trained):
    config, dates, result = trained
    folder = Path(config.data.work_dir) / "runs" / dates[-1].isoformat()
    saved = json.loads((folder / "result.json").read_text())
    assert saved["registered_version"] == result.registered_version == "1"
    assert (folder / "model_state.pt").exists() and (folder / "plots" / "loss_curve.png").exists()
    (latest,) = (folder / "checkpoints").glob("*/LATEST")  # one folder per config digest
    assert latest.read_text() == f"step-{result.steps:09d}"


def test_mlflow_run_holds_config_stats_metrics_plots_and_model(trained):

    config, dates, result = trained
    client = client_for(config.tracking.tracking_uri)
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["dag_id"] == "test_dag" and run.data.tags["window"] == dates[-1].isoformat()
    assert run.data.params["train/batch_token_budget"] == "384"
    assert run.data.params["kernel"] == "PYTORCH" and run.data.params["model.backend"] == "pytorch"
    losses = client.get_metric_history(result.run_id, "train/loss")
    assert len(losses) == result.steps // 5 and {m.step for m in losses} >= {5, 10}
    assert client.get_metric_history(result.run_id, "train/tokens_per_s")
    assert run.data.metrics["eval/is_click/auc"] == pytest.approx(result.metrics["eval/is_click/auc"])
    assert "eval/is_like/calibration" in run.data.metrics
    assert run.data.metrics[f"data/{dates[0].isoformat()}/rows"] == 240
    artifacts = {a.path for folder in ("", "plots", "config", "statistics/data")
                 for a in client.list_artifacts(result.run_id, folder)}
    assert {"plots/loss_curve.png", "plots/auc_by_task.png", "plots/sequence_length_histogram.png",
            "config/pipeline.config", f"statistics/data/{dates[0].isoformat()}.json"} <= artifacts, artifacts
    version = client.get_model_version("dlrm_hstu", result.registered_version)
    assert version.tags["run_id"] == result.run_id and version.tags["window"] == dates[-1].isoformat()
    assert version.tags["train_windows"] == ",".join(d.isoformat() for d in dates[:-1])


def test_triton_config_without_a_gpu_fails_unless_the_fallback_is_allowed(tmp_path, monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)  # as on a CPU machine outside the tests
    dates = write_samples(tmp_path, users=16, windows=2)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    text = small_config_text(tmp_path, max_steps=2, tracking_uri=uri).replace("kernel: PYTORCH", "kernel: TRITON")
    with pytest.raises(ValueError, match="allow_kernel_fallback"):
        train(config=parse_config(text, "triton.config"), eval_window=dates[-1])
    allowed = text.replace('device: "cpu"', 'device: "cpu" allow_kernel_fallback: true')
    result = train(config=parse_config(allowed, "fallback.config"), eval_window=dates[-1])
    params = client_for(uri).get_run(result.run_id).data.params
    assert params["kernel"] == "TRITON" and params["model.backend"] == "pytorch"  # the run says what ran


_PREDICT = """
import sys, numpy as np, pyarrow.parquet as pq
from components.config import load_config
from components.registry.versions import load_model
from hstu_model.batch import collate
config = load_config(sys.argv[1])
model = load_model(sys.argv[2], tracking_uri=config.tracking.tracking_uri, map_location="cpu").eval()
rows = pq.read_table(sys.argv[3])
import torch
with torch.no_grad():
    np.save(sys.argv[4], model(collate(rows, config.model, model.id_rows)).numpy())
"""


def test_registered_version_reloads_in_a_fresh_process_and_predicts_the_same(trained, tmp_path):
    config, dates, result = trained
    config_file = tmp_path / "resolved.config"
    config_file.write_text(small_config_text(Path(config.data.work_dir), tracking_uri=config.tracking.tracking_uri))
    rows_file = sample_files(config.data.work_dir, [dates[-1]])[0]
    out = tmp_path / "pred.npy"
    subprocess.run([sys.executable, "-c", _PREDICT, str(config_file), result.model_uri, str(rows_file), str(out)],
                   cwd=REPO, check=True, timeout=240)
    model = build_model(config.model, "cpu")
    model.load_state_dict(torch.load(result.model_state_path))
    id_rows = IdRows(config.model, parse_model_vocab((Path(result.result_path).parent / ID_ROWS_FILE).read_text()))
    assert id_rows.sizes()["video_id"] > 0
    with torch.no_grad():
        expected = model.eval()(collate(pq.read_table(rows_file), config.model, id_rows)).numpy()
    np.testing.assert_array_equal(np.load(out), expected)


_PYFUNC = """
import sys, json, mlflow.pyfunc, pyarrow.parquet as pq
mlflow.set_tracking_uri(sys.argv[1]); mlflow.set_registry_uri(sys.argv[1])
ranker = mlflow.pyfunc.load_model(sys.argv[2])  # nothing from the repository's config
rows = pq.read_table(sys.argv[3]).drop_columns(["item_action_weight", "item_watch_time"]).to_pandas()
ranker.predict(rows).to_parquet(sys.argv[4])
meta = ranker.metadata
print(json.dumps({"inputs": [c.name for c in meta.get_input_schema().inputs],
                  "outputs": [c.name for c in meta.get_output_schema().inputs],
                  "example": meta.saved_input_example_info is not None}))
"""


def test_a_version_is_a_pyfunc_with_signature_and_example_that_scores_sample_rows_in_a_fresh_process(trained,
                                                                                                      tmp_path):
    config, dates, result = trained
    rows_file = sample_files(config.data.work_dir, [dates[-1]])[0]
    out = tmp_path / "scores.parquet"
    uri = f"models:/{config.promotion.registered_model_name}/{result.registered_version}"
    proc = subprocess.run([sys.executable, "-c", _PYFUNC, config.tracking.tracking_uri, uri, str(rows_file), str(out)],
                          cwd=tmp_path, check=True, timeout=240, capture_output=True, text=True)
    meta = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {"user_id", "video_id", "item_video_id", "item_query_time"} <= set(meta["inputs"]), meta
    assert "item_action_weight" not in meta["inputs"] and meta["example"], "labels are no input; an example is kept"
    assert meta["outputs"] == ["sample", "user_id", "candidate", "item_video_id", "is_click", "is_like"], meta
    scores = pd.read_parquet(out)
    model = build_model(config.model, "cpu")
    model.load_state_dict(torch.load(result.model_state_path))
    id_rows = IdRows(config.model, parse_model_vocab((Path(result.result_path).parent / ID_ROWS_FILE).read_text()))
    with torch.no_grad():
        expected = torch.sigmoid(model.eval()(collate(pq.read_table(rows_file), config.model, id_rows))).numpy()
    np.testing.assert_allclose(scores[["is_click", "is_like"]].to_numpy(), expected, rtol=1e-5, atol=1e-6)
    assert scores["candidate"].max() > 0 and scores["sample"].is_monotonic_increasing


def test_evaluate_uri_reproduces_the_trainers_metrics(trained):
    config, dates, result = trained
    again = evaluate_uri(model_uri=result.model_uri, config=config, window=dates[-1])
    assert again.auc["is_click"] == pytest.approx(result.metrics["eval/is_click/auc"], abs=1e-9)
    assert again.tasks["is_like"].grouped_auc == pytest.approx(result.metrics["eval/is_like/grouped_auc"], abs=1e-9)


def test_a_version_is_scored_with_its_own_config_after_the_config_changed(trained):
    """The champion was trained with tasks (is_click, is_like) and a 512-row video table; today's config has the
    tasks in the other order, a new task and a bigger table. The version is still scored as it was trained."""
    config, dates, result = trained
    tasks = (*reversed(config.model.tasks), dataclasses.replace(config.model.tasks[0], task_name="is_follow",
                                                               task_bitmask=4))
    tables = tuple(dataclasses.replace(t, num_embeddings=2 * t.num_embeddings) for t in config.model.embedding_tables)
    changed = config.replace(model=dataclasses.replace(config.model, tasks=tasks, embedding_tables=tables))
    again = evaluate_uri(model_uri=result.model_uri, config=changed, window=dates[-1])
    assert list(again.tasks) == ["is_click", "is_like"]  # its own tasks, by name
    assert again.auc["is_click"] == pytest.approx(result.metrics["eval/is_click/auc"], abs=1e-9)
    assert again.auc["is_like"] == pytest.approx(result.metrics["eval/is_like/auc"], abs=1e-9)


def _train_without_server(work: Path, dates, **kwargs):
    """Trains with the tracking server down: finishes, writes result.json, then raises."""
    config = small_config(work, epochs=2, checkpoint_every=10, tracking_uri=DEAD_SERVER, num_workers=2)
    with pytest.raises(TrackingUnavailableError, match="No model version was registered"):
        train(config=config, eval_window=dates[-1], **kwargs)
    return json.loads((work / "runs" / dates[-1].isoformat() / "result.json").read_text())


def test_killed_run_resumes_to_the_same_final_metrics(tmp_path):
    """Kill after step 15 (last checkpoint: step 10), resume: same loss curve and metrics (exact on CPU), with
    two loader worker processes (the resumed loader must restart the round-robin at the right worker)."""
    a, b = tmp_path / "a", tmp_path / "b"
    dates = write_samples(a, users=100, windows=3, seed=2)
    shutil.copytree(a, b)
    uninterrupted = _train_without_server(a, dates)
    config_b = small_config(b, epochs=2, checkpoint_every=10, tracking_uri=DEAD_SERVER, num_workers=2)
    with pytest.raises(TrainingInterrupted):
        train(config=config_b, eval_window=dates[-1], stop_after_steps=15)
    (latest,) = (b / "runs" / dates[-1].isoformat() / "checkpoints").glob("*/LATEST")
    assert latest.read_text() == "step-000000010"
    resumed = _train_without_server(b, dates)
    assert resumed["resumed_from_step"] == 10 and resumed["steps"] == uninterrupted["steps"] > 15
    assert [loss for _, loss in resumed["loss_curve"]] == pytest.approx(
        [loss for _, loss in uninterrupted["loss_curve"]], rel=1e-9, abs=1e-12)
    for key, value in uninterrupted["metrics"].items():
        assert resumed["metrics"][key] == pytest.approx(value, rel=1e-9, abs=1e-12, nan_ok=True), key
    assert uninterrupted["registered_version"] is None and uninterrupted["run_id"] is None


def test_another_config_starts_fresh_beside_the_old_checkpoints(tmp_path):
    """A retry (same config) resumes; a rerun of the window with other settings must not resume a foreign
    checkpoint: it trains from step 0 in a folder of its own config digest."""
    dates = write_samples(tmp_path, users=40, windows=2, seed=3)
    config = small_config(tmp_path, epochs=1, checkpoint_every=1, tracking_uri=DEAD_SERVER)
    with pytest.raises(TrainingInterrupted):
        train(config=config, eval_window=dates[-1], stop_after_steps=1)
    other = small_config(tmp_path, epochs=1, checkpoint_every=1, tracking_uri=DEAD_SERVER, budget=640)
    with pytest.raises(TrackingUnavailableError):
        train(config=other, eval_window=dates[-1])
    result = json.loads((tmp_path / "runs" / dates[-1].isoformat() / "result.json").read_text())
    assert result["resumed_from_step"] == 0
    assert len(list((tmp_path / "runs" / dates[-1].isoformat() / "checkpoints").glob("*/LATEST"))) == 2


def _run_group(cmd: list[str], env: dict[str, str], timeout_s: float) -> subprocess.CompletedProcess:
    """Runs ``cmd`` in its own process group; on a timeout the whole group (torchrun's workers too) is killed."""
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"torchrun did not finish within {timeout_s} s: {err[-3000:]}") from None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def test_torchrun_two_cpu_processes_give_the_same_loss_curve_shape(tmp_path):
    dates = write_samples(tmp_path, users=160, windows=3, seed=5)
    config_file = tmp_path / "train.config"
    config_file.write_text(small_config_text(tmp_path, epochs=2, tracking_uri=DEAD_SERVER))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # --standalone: a free rendezvous port on localhost, so parallel runs never meet on 29500.
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "components.training.train", "--config", str(config_file), "--window", dates[-1].isoformat(),
           "--no-register", "--json"]
    proc = _run_group(cmd, env, timeout_s=300)
    result = json.loads((tmp_path / "runs" / dates[-1].isoformat() / "result.json").read_text())
    assert "No model version was registered" in proc.stderr, proc.stderr[-3000:]
    curve = [loss for _, loss in result["loss_curve"]]
    single = small_config(tmp_path / "single", epochs=2, tracking_uri=DEAD_SERVER)
    for folder in ("samples", "vocab"):  # the vocabularies too: without them every id would read row 0
        shutil.copytree(tmp_path / folder, tmp_path / "single" / folder)
    with pytest.raises(TrackingUnavailableError):
        train(config=single, eval_window=dates[-1])
    one = json.loads((tmp_path / "single" / "runs" / dates[-1].isoformat() / "result.json").read_text())
    one_curve = [loss for _, loss in one["loss_curve"]]
    assert len(curve) >= 2 and curve[-1] < curve[0] and one_curve[-1] < one_curve[0]
    assert abs(curve[-1] - one_curve[-1]) < 0.25 * one_curve[0]


def test_samples_without_an_id_vocabulary_are_refused_not_trained_on_row_0(tmp_path):
    dates = write_samples(tmp_path, users=30, windows=2)
    (tmp_path / ID_VOCAB_FILE).unlink()  # samples from before id vocabularies existed
    config = small_config(tmp_path, epochs=1, tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    with pytest.raises(ValueError, match=r"know no id before window .*vocab/ids\.json.*rebuild"):
        train(config=config, eval_window=dates[-1], register=False)
    assert not list((tmp_path / "runs").glob("*/checkpoints/*/" + ID_ROWS_FILE)), "nothing frozen for a retry"
