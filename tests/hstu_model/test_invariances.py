"""The invariances of docs/design.md §5, each test named after its property (eval mode, PyTorch kernels)."""

import copy
import dataclasses

import pytest
import torch
from samples import make_rows, small_config

from hstu_model.batch import collate
from hstu_model.model import build_model

CANDIDATE_COLUMNS = ("item_video_id", "item_query_time", "item_action_weight", "item_watch_time")


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    config = small_config()
    model = build_model(config, "cpu").eval()
    rows = make_rows(6, seed=11, min_history=3, max_candidates=6)
    return config, model, rows


def _predict(model, rows, config):
    with torch.no_grad():
        return model(collate(rows, config))


def test_permuting_candidates_permutes_predictions(setup):
    config, model, rows = setup
    before = _predict(model, rows, config)
    generator = torch.Generator().manual_seed(3)
    permuted, order = copy.deepcopy(rows), []
    start = 0
    for row in permuted:
        n = len(row["item_video_id"])
        perm = torch.randperm(n, generator=generator).tolist()
        for col in CANDIDATE_COLUMNS:
            row[col] = [row[col][i] for i in perm]
        order += [start + i for i in perm]
        start += n
    after = _predict(model, permuted, config)
    # Equal up to float rounding: BLAS sums a row in an order that depends on its position (seen: 6e-8).
    torch.testing.assert_close(after, before[order], rtol=0, atol=1e-6)
    assert not torch.allclose(after, before, atol=1e-3)  # the permutation did move predictions


def test_sample_predictions_do_not_depend_on_batch(setup):
    config, model, rows = setup
    together = _predict(model, rows, config)
    alone = torch.cat([_predict(model, [row], config) for row in rows])
    torch.testing.assert_close(alone, together, rtol=1e-5, atol=1e-5)
    shuffled = _predict(model, rows[::-1], config)
    sizes = [len(r["item_video_id"]) for r in rows]
    torch.testing.assert_close(torch.cat(list(shuffled.split(sizes[::-1]))[::-1]), together, rtol=1e-5, atol=1e-5)


def test_candidate_labels_do_not_change_predictions(setup):
    config, model, rows = setup
    flipped = copy.deepcopy(rows)
    for row in flipped:
        row["item_action_weight"] = [255 - a for a in row["item_action_weight"]]
        row["item_watch_time"] = [w + 100.0 for w in row["item_watch_time"]]
    assert torch.equal(_predict(model, flipped, config), _predict(model, rows, config))


def test_candidate_prediction_does_not_depend_on_other_candidates(setup):
    config, model, rows = setup
    row = rows[0]
    assert len(row["item_video_id"]) >= 2
    full = _predict(model, [row], config)
    only_last = {k: (v[-1:] if k in CANDIDATE_COLUMNS else v) for k, v in row.items()}
    torch.testing.assert_close(_predict(model, [only_last], config), full[-1:], rtol=1e-5, atol=1e-5)


def test_changing_future_history_event_keeps_earlier_history_outputs():
    """Causal part of the mask. With one STU layer; deeper stacks pass future history to earlier tokens
    through the contextual tokens, which docs/design.md §6 lets see the whole history."""
    torch.manual_seed(1)
    config = small_config(attn_num_layers=1)
    model = build_model(config, "cpu").eval()
    rows = make_rows(3, seed=12, min_history=6)
    changed = copy.deepcopy(rows)
    changed[1]["video_id"][-1] = (changed[1]["video_id"][-1] + 7) % 64
    changed[1]["action_weight"][-1] = 128
    with torch.no_grad():
        x0, offsets = model.encode(collate(rows, config))[:2]
        x1 = model.encode(collate(changed, config)).x
    k, n_hist = len(config.feature_groups.contextual), len(rows[1]["video_id"])
    start = int(offsets[1]) + k
    last = start + n_hist - 1
    assert torch.equal(x1[start:last], x0[start:last])
    assert not torch.allclose(x1[last], x0[last])
    other = slice(int(offsets[0]), int(offsets[1]))
    assert torch.equal(x1[other], x0[other])


HISTORY_COLUMNS = {"video_id": "item_video_id", "action_weight": "item_action_weight",
                   "watch_time": "item_watch_time", "action_timestamp": "item_query_time"}


def _query_time_rows(rows: list[dict]) -> list[dict]:
    """The rows as history_mode QUERY_TIME writes them: the history continues with the candidates' events."""
    out = copy.deepcopy(rows)
    for row in out:
        for hist, cand in HISTORY_COLUMNS.items():
            row[hist] = row[hist] + row[cand]
    return out


@pytest.mark.parametrize("layers", [1, 2])
def test_query_time_candidate_sees_only_the_window_events_before_it(layers):
    """No label leaks: a window event's action reaches the candidates after it, never itself or those before
    (through any layer, the contextual tokens, the history summary or the id biases)."""
    torch.manual_seed(2)
    config = dataclasses.replace(small_config(attn_num_layers=layers), query_time=True)
    model = build_model(config, "cpu").eval()
    rows = _query_time_rows(make_rows(3, seed=14, min_history=2, max_candidates=6))
    n_cand = [len(r["item_video_id"]) for r in rows]
    assert n_cand[1] >= 3
    k = 1  # change window event 1 of sample 1: its action, watch time and (later) timestamp
    changed = copy.deepcopy(rows)
    pos = len(rows[1]["video_id"]) - n_cand[1] + k
    changed[1]["action_weight"][pos] = 255 - changed[1]["action_weight"][pos]
    changed[1]["watch_time"][pos] += 50.0
    before, after = _predict(model, rows, config), _predict(model, changed, config)
    first = n_cand[0]
    assert torch.equal(after[:first + k + 1], before[:first + k + 1])  # sample 0 and candidates 0..k
    assert not torch.allclose(after[first + k + 1], before[first + k + 1])  # candidate k + 1 sees it
    assert torch.equal(after[first + n_cand[1]:], before[first + n_cand[1]:])  # sample 2


def test_query_time_without_window_events_equals_window_start():
    """With one candidate per sample nothing in the window comes before it: its own event, though in the
    query-time history, is invisible to it, so both modes predict the same with the same weights."""
    torch.manual_seed(3)
    config = small_config()
    model = build_model(config, "cpu").eval()
    rows = make_rows(4, seed=14, min_history=2, max_candidates=1)
    query_time = dataclasses.replace(config, query_time=True)
    qt_model = build_model(query_time, "cpu").eval()
    qt_model.load_state_dict(model.state_dict())
    torch.testing.assert_close(_predict(qt_model, _query_time_rows(rows), query_time),
                               _predict(model, rows, config), rtol=1e-5, atol=1e-5)
