"""MLflow tracking against a real sqlite store: URI resolution, run logging, register-after-success, model
round trip in a fresh process, and a clear error for a tracking server that is down."""

from __future__ import annotations

import dataclasses
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from components.config import TrackingConfig, load_config
from components.registry.runs import start_run
from components.registry.store import (
    TrackingUnavailableError,
    check_tracking_server,
    client_for,
    connect,
    resolve_tracking_uri,
    tracking_server_reachable,
)
from components.registry.versions import load_model, model_alias_uri, register_version

REPO = Path(__file__).resolve().parents[2]


def _config(work_dir: Path, *, tracking_uri: str = "", system_metrics: bool = False):
    base = load_config(REPO / "configs" / "small_cpu.config")
    return base.replace(data=dataclasses.replace(base.data, work_dir=str(work_dir)),
                        tracking=TrackingConfig(tracking_uri, "tracking_tests", system_metrics))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tiny_module() -> torch.nn.Module:
    torch.manual_seed(3)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tracking")


@pytest.fixture(scope="module")
def target(work_dir):
    """The embedded default store (sqlite in work_dir), created once for this module (~7 s)."""
    mp = pytest.MonkeyPatch()
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    try:
        yield connect(_config(work_dir))
    finally:
        mp.undo()


def test_tracking_uri_prefers_config_then_env_then_sqlite_in_work_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://env-host:5000")
    assert resolve_tracking_uri(_config(tmp_path, tracking_uri="http://cfg:5000")) == "http://cfg:5000"
    assert resolve_tracking_uri(_config(tmp_path)) == "http://env-host:5000"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert resolve_tracking_uri(_config(tmp_path)) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"


def test_default_store_keeps_db_and_artifacts_in_work_dir(target, work_dir, monkeypatch):
    assert target.tracking_uri == f"sqlite:///{work_dir.resolve()}/mlflow.db"
    assert (work_dir / "mlflow.db").is_file()
    assert target.artifact_location == str(work_dir.resolve() / "mlartifacts")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    again = connect(_config(work_dir))  # get, not create
    assert again.experiment_id == target.experiment_id


def test_run_logs_tags_params_statistics_steps_config_and_plots(target):
    with start_run(target, dag_id="hstu_daily", dag_run_id="scheduled__2022-04-09", window="2022-04-09",
                   params={"epochs": 2, "optimizer": {"lr": 0.001}}) as run:
        run.log_config_text("model_config { max_seq_len: 64 }\n")
        flat = run.log_statistics({"rows": 1200, "users": 40, "quarantined": {"null_user_id": 3},
                                   "source": "builtin", "seq_len_hist": [1, 5, 9]}, prefix="data")
        for step, loss in enumerate([0.9, 0.7, 0.6]):
            run.log_step_metrics({"train/loss": loss, "train/tokens_per_s": 100.0 + step}, step=step)
        run.log_curves("plots/loss.png", {"train": ([0, 1, 2], [0.9, 0.7, 0.6])}, ylabel="loss")
        run.log_histogram("plots/seq_len.png", [0, 8, 16, 32], [5, 9, 1], xlabel="tokens")
    client = client_for(target.tracking_uri)
    logged = client.get_run(run.run_id)
    assert logged.info.status == "FINISHED"
    assert {k: logged.data.tags[k] for k in ("dag_id", "dag_run_id", "window")} == {
        "dag_id": "hstu_daily", "dag_run_id": "scheduled__2022-04-09", "window": "2022-04-09"}
    assert logged.data.params["epochs"] == "2" and logged.data.params["optimizer/lr"] == "0.001"
    assert logged.data.params["data/source"] == "builtin"
    assert logged.data.metrics["data/quarantined/null_user_id"] == 3.0 and flat["data/rows"] == 1200
    assert [m.value for m in client.get_metric_history(run.run_id, "train/loss")] == [0.9, 0.7, 0.6]
    paths = {a.path for d in ("", "config", "statistics", "plots") for a in client.list_artifacts(run.run_id, d)}
    assert {"config/pipeline.config", "statistics/data.json", "plots/loss.png", "plots/seq_len.png"} <= paths
    png = Path(client.download_artifacts(run.run_id, "plots/loss.png"))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_failed_training_ends_failed_and_can_never_be_registered(target):
    with pytest.raises(RuntimeError, match="boom"):
        with start_run(target, dag_id="d", dag_run_id="r1", window="2022-04-09") as run:
            logged = run.log_model(_tiny_module())
            raise RuntimeError("boom")
    assert client_for(target.tracking_uri).get_run(run.run_id).info.status == "FAILED"
    with pytest.raises(ValueError, match="status FAILED"):
        register_version(target, run_id=run.run_id, model_uri=logged.model_uri, window="2022-04-09",
                         model_name="tracking_failed")


def test_register_inside_the_run_block_is_refused(target):
    with start_run(target, dag_id="d", dag_run_id="r2", window="2022-04-09") as run:
        logged = run.log_model(_tiny_module())
        with pytest.raises(ValueError, match="status RUNNING"):
            register_version(target, run_id=run.run_id, model_uri=logged.model_uri, window="2022-04-09",
                             model_name="tracking_early")


def test_logged_registered_model_gives_identical_outputs_in_a_fresh_process(target, tmp_path):
    module = _tiny_module()
    with start_run(target, dag_id="d", dag_run_id="r3", window="2022-04-09") as run:
        logged = run.log_model(module)
    version = register_version(target, run_id=run.run_id, model_uri=logged.model_uri, window="2022-04-09",
                               train_windows=["2022-04-07", "2022-04-08"], model_name="tracking_roundtrip")
    client = client_for(target.tracking_uri)
    tags = client.get_model_version("tracking_roundtrip", version.version).tags
    assert tags["run_id"] == run.run_id and tags["window"] == "2022-04-09"
    assert tags["train_windows"] == "2022-04-07,2022-04-08" and tags["dag_run_id"] == "r3"
    client.set_registered_model_alias("tracking_roundtrip", "champion", version.version)

    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    torch.save(x, tmp_path / "x.pt")
    code = ("import sys, torch; from components.registry.versions import load_model; x = torch.load(sys.argv[2]); "
            "torch.save([load_model(u, tracking_uri=sys.argv[1])(x).detach() for u in sys.argv[4:]], sys.argv[3])")
    uris = [version.model_uri, model_alias_uri("tracking_roundtrip", "champion")]
    subprocess.run([sys.executable, "-c", code, target.tracking_uri, str(tmp_path / "x.pt"),
                    str(tmp_path / "out.pt"), *uris], cwd=REPO, check=True, timeout=180, capture_output=True)
    by_version, by_alias = torch.load(tmp_path / "out.pt")
    assert torch.equal(by_version, module(x).detach()) and torch.equal(by_alias, module(x).detach())
    in_process = load_model(version.model_uri, tracking_uri=target.tracking_uri)
    torch.testing.assert_close(in_process(x), module(x), rtol=0, atol=0)


def test_system_metrics_are_logged_when_enabled(work_dir, monkeypatch):
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "1")
    target = connect(_config(work_dir, tracking_uri=f"sqlite:///{work_dir.resolve()}/mlflow.db",
                             system_metrics=True))
    with start_run(target, dag_id="d", dag_run_id="r4", window="2022-04-09") as run:
        run.log_step_metrics({"train/loss": 1.0}, step=0)
        time.sleep(1.5)  # the monitor publishes after one sampling interval (1 s here)
    metrics = client_for(target.tracking_uri).get_run(run.run_id).data.metrics
    assert any(k.startswith("system/") for k in metrics), sorted(metrics)


def test_unreachable_server_gives_one_clear_error(tmp_path):
    uri = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(TrackingUnavailableError, match=rf"MLflow tracking server at {uri} is unreachable"):
        check_tracking_server(uri, timeout_s=2)
    assert not tracking_server_reachable(uri, timeout_s=2)
    with pytest.raises(TrackingUnavailableError, match="is unreachable"):
        connect(_config(tmp_path, tracking_uri=uri))
