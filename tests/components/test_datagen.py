"""The built-in data generator: schema, determinism, planted signal, oracle and baselines (docs/design.md §9)."""

from __future__ import annotations

import csv
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from components.datagen import (
    ACTION_COLUMNS,
    EVENT_COLUMNS,
    TASK_NAMES,
    USER_FEATURE_COLUMNS,
    SignalConfig,
    auc,
    baseline_auc,
    generate_dataset,
    load_user_features,
    oracle_auc,
)
from components.datagen.schema import LICENSE_FILE, TRUTH_COLUMNS, USER_FEATURES_FILE

START = date(2022, 4, 8)
REAL_LOG_COLUMNS = (  # KuaiRand log_standard header, in the published order
    "user_id,video_id,date,hourmin,time_ms,is_click,is_like,is_follow,is_comment,is_forward,is_hate,long_view,"
    "play_time_ms,duration_ms,profile_stay_time,comment_stay_time,is_profile_enter,is_rand,tab"
).split(",")


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small_csv(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gen") / "small"
    generate_dataset(out=out, users=300, days=2, start_date=START, seed=3, fmt="csv")
    return out


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """2000 users x 6 days on the default signal (~110k events)."""
    return generate_dataset(out=tmp_path_factory.mktemp("gen") / "default", users=2000, days=6,
                            start_date=START, seed=0)


def test_csv_events_have_the_kuairand_log_schema(small_csv):
    assert EVENT_COLUMNS == tuple(REAL_LOG_COLUMNS)
    for day in (START, START + timedelta(days=1)):
        path = small_csv / "events" / f"dt={day.isoformat()}" / "part-00000.csv"
        with path.open() as f:
            assert next(csv.reader(f)) == REAL_LOG_COLUMNS
        table = pacsv.read_csv(path)  # type inference: every column must come back as an integer
        assert table.column_names == REAL_LOG_COLUMNS
        assert all(pa.types.is_integer(t) for t in table.schema.types), table.schema
        assert table.num_rows > 100


def test_parquet_events_have_the_kuairand_log_schema(tmp_path):
    generate_dataset(out=tmp_path, users=100, days=1, start_date=START, seed=1, fmt="parquet")
    schema = pq.read_schema(tmp_path / "events" / f"dt={START.isoformat()}" / "part-00000.parquet")
    assert schema.names == REAL_LOG_COLUMNS
    assert set(schema.types) == {pa.int64()}


def test_event_values_are_consistent(small_csv):
    day = START + timedelta(days=1)
    ev = pacsv.read_csv(small_csv / "events" / f"dt={day.isoformat()}" / "part-00000.csv").to_pandas()
    truth = pq.read_table(small_csv / "truth" / f"dt={day.isoformat()}" / "part-00000.parquet").to_pandas()
    assert list(truth.columns) == list(TRUTH_COLUMNS)
    assert (truth[["user_id", "video_id", "time_ms"]].to_numpy() == ev[["user_id", "video_id", "time_ms"]].to_numpy()).all()
    assert not ev.duplicated(["user_id", "video_id", "time_ms"]).any()
    assert (ev["date"] == 20220409).all()
    ms = ev["time_ms"] - 1_649_462_400_000  # 2022-04-09T00:00Z
    assert ((ms >= 0) & (ms < 86_400_000)).all()
    assert (ev["hourmin"] == (ms // 3_600_000) * 100 + (ms // 60_000) % 60).all()
    assert ((ev["play_time_ms"] >= np.minimum(ev["duration_ms"], 18_000)) == (ev["long_view"] == 1)).all()
    assert ev[list(ACTION_COLUMNS) + ["is_rand"]].isin([0, 1]).all().all()
    assert (ev[["is_like", "is_follow", "is_comment", "is_forward"]].max(axis=1) <= ev["is_click"]).all()
    assert ((ev["profile_stay_time"] > 0) == (ev["is_profile_enter"] == 1)).all()
    probs = truth[[f"p_{c}" for c in ACTION_COLUMNS]].to_numpy()
    assert ((probs > 0) & (probs < 1)).all()
    assert (ev.groupby("user_id")["time_ms"].diff().dropna() > 0).all()  # ordered by (user, time)


def test_user_features_are_real_rows_with_the_real_columns(small_csv):
    path = small_csv / "user_features" / "user_features.csv"
    lines = path.read_text().splitlines()
    real_lines = USER_FEATURES_FILE.read_text().splitlines()
    assert lines[0] == real_lines[0]
    assert tuple(lines[0].split(",")) == USER_FEATURE_COLUMNS
    assert len(lines) == 301 and set(lines[1:]) <= set(real_lines[1:])
    assert (small_csv / "user_features" / LICENSE_FILE.name).read_bytes() == LICENSE_FILE.read_bytes()
    users = set(pacsv.read_csv(small_csv / "events" / f"dt={START.isoformat()}" / "part-00000.csv")
                .column("user_id").to_pylist())
    assert users <= {int(line.split(",")[0]) for line in lines[1:]}


def test_more_users_than_the_real_file_are_renumbered(tmp_path):
    generate_dataset(out=tmp_path, users=27_400, days=1, start_date=START, seed=0)
    table = load_user_features(tmp_path / "user_features" / "user_features.csv")
    assert table["user_id"].tolist() == list(range(27_400))
    assert "renumbered" in (tmp_path / "user_features" / "NOTICE.md").read_text()


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path):
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        generate_dataset(out=tmp_path / name, users=200, days=2, start_date=START, seed=seed, fmt="parquet")
    a, b, c = (_files(tmp_path / n) for n in "abc")
    assert len(a) == 10 and a == b
    assert a.keys() == c.keys()
    assert a["events/dt=2022-04-08/part-00000.parquet"] != c["events/dt=2022-04-08/part-00000.parquet"]


def test_the_video_table_the_videos_come_from_is_written_with_its_licence(small_csv):
    table = pd.read_csv(small_csv / "video_features" / "video_features.csv", dtype={"tag": str})
    assert {"video_id", "tag"} <= set(table.columns)
    events = pd.concat(pd.read_csv(f) for f in (small_csv / "events").rglob("*.csv"))
    assert set(events["video_id"]) <= set(table["video_id"])  # every generated video has its row (and tag)
    assert (small_csv / "video_features" / LICENSE_FILE.name).read_bytes() == LICENSE_FILE.read_bytes()


def test_existing_output_is_refused_unless_overwrite(small_csv, tmp_path):
    generate_dataset(out=tmp_path, users=50, days=1, seed=0)
    with pytest.raises(ValueError, match="already holds generated data"):
        generate_dataset(out=tmp_path, users=50, days=1, seed=0)
    assert generate_dataset(out=tmp_path, users=50, days=1, seed=0, overwrite=True).events > 0
    with pytest.raises(ValueError, match="fmt='json'"):
        generate_dataset(out=tmp_path / "x", users=50, days=1, fmt="json")


def test_label_rates_are_kuairand_like(default_run):
    r = default_run.label_rates
    assert 0.30 <= r["is_click"] <= 0.40 and 0.20 <= r["long_view"] <= 0.30
    assert 0.01 <= r["is_like"] <= 0.03
    assert all(0 < r[c] < 0.01 for c in ("is_follow", "is_comment", "is_forward", "is_hate"))
    assert 80_000 < default_run.events < 160_000


def test_true_probabilities_are_calibrated(default_run):
    """The stored probabilities are the marginals the labels are drawn from: their mean is the label rate."""
    truth = pq.read_table(default_run.out / "truth").to_pandas()
    assert len(truth) == default_run.events
    for col in ACTION_COLUMNS:
        rate, mean_p = default_run.label_rates[col], float(truth[f"p_{col}"].mean())
        assert abs(mean_p - rate) < 4 * np.sqrt(rate / len(truth)) + 1e-4, (col, mean_p, rate)


def test_oracle_beats_the_static_baselines(default_run):
    last = START + timedelta(days=5)
    oracle = oracle_auc(data=default_run.out, window_start=last, window_end=last + timedelta(days=1))
    base = baseline_auc(data=default_run.out, train_start=START, train_end=last, eval_start=last,
                        eval_end=last + timedelta(days=1))
    assert set(oracle) == set(TASK_NAMES) == set(base["popularity"]) == set(base["logistic"])
    for task in ("click", "like"):
        assert oracle[task] >= base["popularity"][task] + 0.03, (task, oracle, base)
        assert oracle[task] >= base["logistic"][task] + 0.03, (task, oracle, base)
        assert base["popularity"][task] > 0.52  # the baselines do learn something
    with pytest.raises(ValueError, match="before the training window ends"):
        baseline_auc(data=default_run.out, train_start=START, train_end=last, eval_start=START, eval_end=last)


def test_sequential_term_carries_signal(tmp_path):
    """Switching off the short-term interest lowers the best achievable click AUC."""
    window = {"window_start": START + timedelta(days=2), "window_end": START + timedelta(days=3)}
    on = generate_dataset(out=tmp_path / "on", users=600, days=3, start_date=START, seed=0)
    off = generate_dataset(out=tmp_path / "off", users=600, days=3, start_date=START, seed=0,
                           signal=replace(SignalConfig(), w_short=0.0))
    assert oracle_auc(data=on.out, **window)["click"] > oracle_auc(data=off.out, **window)["click"] + 0.02


def test_window_start_oracle_sits_between_the_baselines_and_the_oracle(default_run):
    """Freezing the short-term interest at the day's start loses the day's sequential signal, not all of it."""
    last = START + timedelta(days=5)
    window = {"data": default_run.out, "window_start": last, "window_end": last + timedelta(days=1)}
    full, start = oracle_auc(**window), oracle_auc(**window, at_window_start=True)
    base = baseline_auc(data=default_run.out, train_start=START, train_end=last, eval_start=last,
                        eval_end=last + timedelta(days=1))
    for task in ("click", "like"):
        assert base["logistic"][task] + 0.02 < start[task] < full[task] - 0.01, (task, full, start, base)


def test_oracle_reports_missing_partitions(small_csv):
    with pytest.raises(ValueError, match="no events partitions"):
        oracle_auc(data=small_csv, window_start=date(2030, 1, 1), window_end=date(2030, 1, 2))


def test_real_user_features_load_with_their_quirks():
    table = load_user_features()
    assert tuple(table.columns) == USER_FEATURE_COLUMNS and len(table) == 27_285
    assert (table["user_active_degree"] == "UNKNOWN").sum() == 6
    assert set(table["is_live_streamer"].unique()) == {-124, 1}
    assert "[100,1k)" in set(table["fans_user_num_range"]) and "730+" in set(table["register_days_range"])
    assert table["onehot_feat4"].isna().sum() > 0 and table["onehot_feat4"].dtype == np.float64
    assert table["user_id"].dtype == np.int64 and table["register_days"].dtype == np.int64


def test_auc_matches_the_pairwise_definition_with_ties():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, 300).astype(float)  # many ties
    labels = rng.random(300) < 0.3
    pos, neg = scores[labels], scores[~labels]
    pairwise = ((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])).mean()
    assert auc(scores, labels) == pytest.approx(pairwise, abs=1e-12)
    assert auc(np.array([0.1, 0.9, 0.5]), np.array([0, 1, 0])) == 1.0
    assert np.isnan(auc(np.array([0.1, 0.2]), np.array([1, 1])))
