"""The Airflow and MLflow UIs, driven in headless Chromium (Playwright) against the stack `make up` starts.

Logs in to Airflow, triggers `hstu_daily` from the trigger form with changed Params, waits for the run to
succeed, saves a screenshot of the run's grid view (test-artifacts/), and opens the MLflow model page that
shows the `champion` alias. Needs Debian's chromium (`make test-browser` installs it); skipped without it.
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pytest

from components.orchestration.localstack import AIRFLOW_PORT, MLFLOW_PORT, REPO, admin_password, down, up
from tests.dags.dag_config import dag_test_config

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts"
# Chromium flags for a closed network and a root user (see the env notes): no sandbox, no background calls.
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
AIRFLOW = f"http://127.0.0.1:{AIRFLOW_PORT}"

pytestmark = [
    pytest.mark.browser, pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium: run `make test-browser`"),
]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    from components.datagen import generate_dataset

    work = tmp_path_factory.mktemp("stack")
    generate_dataset(out=work / "raw", users=300, days=3, seed=1)
    config = work / "ui.config"  # floors at 0 so the first run becomes the champion
    config.write_text(dag_test_config(train_windows=None))
    try:
        urls = up(work)
        yield work, urls, config
    finally:
        down(work)


def _api(path: str, token: str) -> dict:
    request = urllib.request.Request(AIRFLOW + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _token(password: str) -> str:
    body = json.dumps({"username": "admin", "password": password}).encode()
    request = urllib.request.Request(AIRFLOW + "/auth/token", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["access_token"]


def _wait_for_run(token: str, timeout_s: float = 900) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        # Only the manual run: unpausing on trigger also schedules today's run, which finds no raw data.
        runs = _api("/api/v2/dags/hstu_daily/dagRuns?run_type=manual&limit=1", token)["dag_runs"]
        if runs and runs[0]["state"] in ("success", "failed"):
            return runs[0]
        time.sleep(10)
    raise AssertionError(f"the DAG run did not finish within {timeout_s:.0f} s")


def test_trigger_from_the_form_and_see_the_champion(stack):
    from playwright.sync_api import expect, sync_playwright

    work, _, config = stack
    password = admin_password(work)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(AIRFLOW + "/")
        page.get_by_label("Username").fill("admin")
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(AIRFLOW + "/")
        page.goto(AIRFLOW + "/dags/hstu_daily")
        page.get_by_role("button", name="Trigger").first.click()
        form = page.get_by_role("dialog")
        form.locator("input[type=date]").first.fill("2022-04-10")  # Evaluation window (was empty)
        form.get_by_role("spinbutton").first.fill("1")  # Training windows (was the config's 3)
        form.get_by_label("Pipeline config").fill(str(config))  # the config and work folder of this test
        form.get_by_label("Work folder").fill(str(work))
        form.get_by_role("button", name="Trigger").click()
        run = _wait_for_run(_token(password))
        assert run["state"] == "success", run
        assert run["conf"]["window_date"] == "2022-04-10" and run["conf"]["train_windows"] == 1
        assert run["conf"]["config_file"] == str(config) and run["conf"]["work_dir"] == str(work)
        page.goto(f"{AIRFLOW}/dags/hstu_daily/runs/{run['dag_run_id']}")
        expect(page.get_by_text("report").first).to_be_visible(timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "airflow_run_grid.png"), full_page=True)

        page.goto(f"http://127.0.0.1:{MLFLOW_PORT}/#/models/dlrm_hstu")
        expect(page.get_by_text("champion").first).to_be_visible(timeout=60_000)
        page.screenshot(path=str(ARTIFACTS / "mlflow_model_champion.png"), full_page=True)
        browser.close()
