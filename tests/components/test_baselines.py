"""The baseline suite on hand-made sample windows: exact popularity and history-rate AUCs, the cache, the CLI.

Two training windows and one eval window of three users; tasks is_click (bit 1) and is_like (bit 2).
Training click labels per item: 100 -> 2 of 3, 101 -> 1 of 3, 102 -> 0 of 2 (global rate 3/8); one like (item
100 of 3, global 1/8). With the smoothing a = 20 the click popularity of 100 is (2 + 20 * 3/8) / (3 + 20).
"""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from train_data import CONTEXT, small_config, small_config_text

from components.baselines.features import candidate_frame, out_of_window_counts, task_labels
from components.baselines.models import SuiteData, popularity
from components.baselines.suite import BaselineResult, best_per_task, cache_path, run_baselines
from components.orchestration.cli import main
from components.training.evaluate import reference_aucs

D1, D2, EVAL = date(2024, 5, 1), date(2024, 5, 2), date(2024, 5, 3)
# window -> rows of (user, history items, history action bitmasks, candidate items, candidate label bitmasks)
WINDOWS = {
    D1: [(1, [10, 11], [1, 1], [100, 101], [1, 0]),
         (2, [12], [0], [100, 102], [3, 0])],
    D2: [(1, [10, 11, 100], [1, 1, 1], [101, 102], [1, 0]),
         (3, [], [], [100, 101], [0, 0])],
    EVAL: [(1, [10, 11, 100, 101], [1, 1, 1, 1], [100, 103], [1, 0]),
           (2, [12, 100], [0, 3], [101, 102], [1, 0]),
           (3, [100], [0], [102, 100], [0, 2])],
}


def _write_window(work, day: date, rows) -> None:
    start = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())
    ints = pa.list_(pa.int64())
    table = pa.table({
        "user_id": pa.array([r[0] for r in rows], pa.int64()),
        **{c: pa.array([r[0] % 3 + i for r in rows], pa.int64()) for i, c in enumerate(CONTEXT)},
        "video_id": pa.array([r[1] for r in rows], ints),
        "action_weight": pa.array([r[2] for r in rows], ints),
        "action_timestamp": pa.array([[start - 100 * (len(r[1]) - i) for i in range(len(r[1]))] for r in rows], ints),
        "item_video_id": pa.array([r[3] for r in rows], ints),
        "item_query_time": pa.array([[start + 3600 * (i + 1) for i in range(len(r[3]))] for r in rows], ints),
        "item_action_weight": pa.array([r[4] for r in rows], ints),
    })
    folder = work / "samples" / f"dt={day.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, folder / "part-00000.parquet")


@pytest.fixture
def config(tmp_path):
    for day, rows in WINDOWS.items():
        _write_window(tmp_path, day, rows)
    return small_config(tmp_path)


def _data(config) -> SuiteData:
    train, evl = candidate_frame(config, [D1, D2]), candidate_frame(config, [EVAL])
    return SuiteData(train=train, eval=evl, y_train=task_labels(train, config.model.tasks),
                     tasks=("is_click", "is_like"), contextual=tuple(config.model.feature_groups.contextual))


def test_candidate_frame_has_one_row_per_candidate(config):
    frame = candidate_frame(config, [EVAL])
    assert frame["item"].tolist() == [100, 103, 101, 102, 102, 100]
    assert frame["user_id"].tolist() == [1, 1, 2, 2, 3, 3]
    assert frame["position"].tolist() == [0, 1, 0, 1, 0, 1]
    assert frame["hour"].tolist() == [1, 2, 1, 2, 1, 2]
    assert frame["in_history"].tolist() == [1, 0, 0, 0, 0, 1]
    assert frame["hist_len"].tolist() == [4, 4, 2, 2, 1, 1]
    assert frame["hist_pos_is_click"].tolist() == [4, 4, 1, 1, 0, 0]
    assert frame["hist_pos_is_like"].tolist() == [0, 0, 1, 1, 0, 0]
    assert task_labels(frame, config.model.tasks).tolist() == [[1, 0], [0, 0], [1, 0], [0, 0], [0, 0], [0, 1]]


def test_query_time_counts_see_the_window_events_before_each_candidate(tmp_path):
    # Query-time samples: the history ends with the candidates' own events (item 100 clicked, then 103 not).
    rows = [(1, [10, 11, 100, 103], [1, 0, 1, 0], [100, 103], [1, 0]),
            (2, [12, 101, 102, 12], [1, 1, 0, 3], [101, 102, 12], [1, 0, 3])]
    _write_window(tmp_path, EVAL, rows)
    base = small_config(tmp_path)
    config = base.replace(data=dataclasses.replace(base.data, history_mode="QUERY_TIME"))
    frame = candidate_frame(config, [EVAL])
    # candidate c sees the pre-window history and the window's events before c, never its own
    assert frame["hist_len"].tolist() == [2, 3, 1, 2, 3]
    assert frame["hist_pos_is_click"].tolist() == [1, 2, 1, 2, 2]
    assert frame["hist_pos_is_like"].tolist() == [0, 0, 0, 0, 0]
    assert frame["in_history"].tolist() == [0, 0, 0, 0, 1]  # 12 is in user 2's pre-window history
    window_start = candidate_frame(base, [EVAL])  # the same rows read as window-start: everything is visible
    assert window_start["hist_len"].tolist() == [4, 4, 4, 4, 4]


def test_item_counters_enter_the_frame_and_the_gbdt(tmp_path):
    """With data_config.item_counter_days the candidate rows carry the counters of the samples, and the GBDT
    (the model reads them, so its strongest baseline does too) ranks by them when only they carry the label."""
    rng = np.random.default_rng(0)
    for day in (D1, D2, EVAL):
        rows = [(u, [10], [1], [int(i) for i in rng.integers(200, 260, 8)], [0] * 8) for u in range(1, 41)]
        hot = {r[0]: rng.random(8) < 0.5 for r in rows}
        rows = [(u, h, a, c, [int(x) for x in hot[u]]) for u, h, a, c, _ in rows]
        _write_window(tmp_path, day, rows)
        table = pq.read_table(tmp_path / "samples" / f"dt={day.isoformat()}")
        counts = [[[40, 36 if x else 4] + [0] * 7 for x in hot[u]] for u in table.column("user_id").to_pylist()]
        table = table.append_column("item_counts", pa.array(counts, pa.list_(pa.list_(pa.int64()))))
        pq.write_table(table, tmp_path / "samples" / f"dt={day.isoformat()}" / "part-00000.parquet")
    base = small_config(tmp_path)
    config = base.replace(data=dataclasses.replace(base.data, item_counter_days=3))
    frame = candidate_frame(config, [EVAL])
    assert frame["item_n"].tolist() == [40] * 320
    assert ((frame["item_pos_is_click"] == 36) == (frame["label"] & 1).astype(bool)).all()
    assert "item_pos_is_like" in frame and "item_n" not in candidate_frame(base, [EVAL])
    result = run_baselines(config=config, eval_window=EVAL, train_windows=[D1, D2], use_cache=False)
    assert result.aucs["gbdt"]["is_click"] > 0.99 and result.aucs["popularity"]["is_click"] < 0.7


def test_out_of_window_counts_leave_the_own_window_out(config):
    train = candidate_frame(config, [D1, D2])
    y = task_labels(train, config.model.tasks)[:, 0]
    pos, n, eval_pos, eval_n = out_of_window_counts(train, y, "item", train["item"].iloc[:1])
    # item 100: rows 0 and 2 in D1 see only D2's (one row, no click); row 6 in D2 sees D1's two clicks
    assert (pos[[0, 2, 6]].tolist(), n[[0, 2, 6]].tolist()) == ([0, 0, 2], [1, 1, 2])
    assert (eval_pos.tolist(), eval_n.tolist()) == ([2], [3])


def test_popularity_is_the_smoothed_item_rate(config):
    scores = popularity(_data(config))
    click = {100: 9.5 / 23, 101: 8.5 / 23, 102: 7.5 / 22, 103: 3 / 8}  # (pos + 20 * 3/8) / (n + 20); 103 unseen
    like = {100: 3.5 / 23, 101: 2.5 / 23, 102: 2.5 / 22, 103: 1 / 8}
    items = [100, 103, 101, 102, 102, 100]
    np.testing.assert_allclose(scores[:, 0], [click[i] for i in items])
    np.testing.assert_allclose(scores[:, 1], [like[i] for i in items])


def test_suite_aucs_by_hand(config):
    result = run_baselines(config=config, eval_window=EVAL, train_windows=[D2, D1])
    assert result.train_windows == (D1.isoformat(), D2.isoformat())
    assert (result.train_candidates, result.eval_candidates, result.eval_samples) == (8, 6, 3)
    # click positives score 9.5/23 and 8.5/23 against 3/8, 7.5/22 (twice) and 9.5/23 (a tie): 5.5 of 8 pairs
    assert result.aucs["popularity"] == pytest.approx({"is_click": 5.5 / 8, "is_like": 4.5 / 5})
    # history click rates (a = 5, pooled prior 5/7): users 53/63, 32/49, 25/42 -> 6 of 8 pairs;
    # like rates 5/63, 12/49, 5/42: the positive (user 3) beats user 1's two, ties its own other candidate
    assert result.aucs["history_rate"] == pytest.approx({"is_click": 6 / 8, "is_like": 2.5 / 5})
    assert set(result.aucs) == {"popularity", "logistic", "history_rate", "history_popularity", "gbdt"}
    for name in ("logistic", "history_popularity", "gbdt"):
        assert set(result.aucs[name]) == {"is_click", "is_like"}
        assert all(0.0 <= v <= 1.0 for v in result.aucs[name].values()), (name, result.aucs[name])
    for task, (name, value) in result.best.items():
        assert value == max(v[task] for v in result.aucs.values()) == result.aucs[name][task]


def test_best_ignores_nan_and_names_the_baseline():
    best = best_per_task({"a": {"x": 0.6, "y": math.nan}, "b": {"x": 0.7, "y": math.nan}})
    assert best["x"] == ("b", 0.7)
    assert best["y"][0] == "" and math.isnan(best["y"][1])


def test_cache_round_trip_and_rebuilt_samples_invalidate_it(config):
    first = run_baselines(config=config, eval_window=EVAL, train_windows=[D1, D2])
    path = cache_path(config.data.work_dir, EVAL, [D1, D2])
    assert path.name == "2024-05-03__2024-05-01_2024-05-02.json" and not first.cached
    assert json.loads(path.read_text())["result"]["aucs"] == first.aucs
    again = run_baselines(config=config, eval_window=EVAL, train_windows=[D1, D2])
    assert again.cached and isinstance(again, BaselineResult)
    assert (again.aucs, again.best, again.train_windows) == (first.aucs, first.best, first.train_windows)
    _write_window(Path(config.data.work_dir), EVAL, WINDOWS[EVAL][:2])  # the eval partition is rebuilt
    rebuilt = run_baselines(config=config, eval_window=EVAL, train_windows=[D1, D2])
    assert not rebuilt.cached and rebuilt.eval_candidates == 4


def test_training_windows_must_precede_the_eval_window(config):
    with pytest.raises(ValueError, match="not before the evaluation window"):
        run_baselines(config=config, eval_window=D2, train_windows=[D1, D2])


def test_evaluator_references_include_the_suite(config, caplog):
    refs = reference_aucs(config, EVAL, [D1, D2])
    assert set(refs) == {"baseline_popularity", "baseline_logistic", "baseline_history_rate",
                         "baseline_history_popularity", "baseline_gbdt", "baseline_best"}
    assert refs["baseline_popularity"]["is_click"] == pytest.approx(5.5 / 8)
    assert refs["baseline_best"]["is_click"] == max(refs[k]["is_click"] for k in refs)
    assert reference_aucs(config, date(2024, 6, 1), [D1]) == {}  # no samples: a warning, not an error
    assert "no baseline AUC for window 2024-06-01" in caplog.text


def test_cli_prints_the_table(config, tmp_path, capsys):
    path = tmp_path / "test.config"
    path.write_text(small_config_text(tmp_path))
    assert main(["baselines", "--config", str(path), "--window", EVAL.isoformat(), "--train-windows", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "trained on 2 windows 2024-05-01..2024-05-02: 8 training, 6 eval candidates" in out[0]
    assert out[1].split() == ["task", "popularity", "logistic", "history_rate", "history_popularity", "gbdt", "best"]
    click = out[2].split()
    assert click[0] == "is_click" and click[1] == "0.6875" and click[3] == "0.7500"
    # default: data_config.train_windows (3) before the window, of which the two that exist
    assert main(["baselines", "--config", str(path), "--window", EVAL.isoformat(), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["train_windows"] == [D1.isoformat(), D2.isoformat()] and payload["cached"] is True


def test_cli_missing_window_exits_2(config, tmp_path, capsys):
    path = tmp_path / "test.config"
    path.write_text(small_config_text(tmp_path))
    assert main(["baselines", "--config", str(path), "--window", "2024-05-09", "--train-windows", "2"]) == 2
    assert "no sample Parquet for window" in capsys.readouterr().err
