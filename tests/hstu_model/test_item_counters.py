"""The candidates' item counters as tower inputs (hstu_model/item_counters.py): values by hand, the batch's
column, and a signal only the counters carry, learned on users the model never saw."""

import dataclasses
import math

import numpy as np
import pyarrow as pa
import pytest
import torch
from samples import held_out_auc, make_rows, small_config, train_steps

from hstu_model.batch import collate
from hstu_model.export import export_model, inference_inputs
from hstu_model.item_counters import ACTION_BITS, SMOOTHING, VOLUME_SCALE, ItemCounterRates
from hstu_model.model import build_model


def counters_config():
    base = small_config()
    return dataclasses.replace(base, item_counters=True, tower=dataclasses.replace(base.tower, history_summary=True))


def test_rates_by_hand():
    rates = ItemCounterRates(ACTION_BITS)
    assert torch.equal(rates.prior(), torch.full((ACTION_BITS,), 0.5))  # nothing counted yet
    rates.count(torch.tensor([1, 1, 3, 0]))  # 4 candidates: 3 clicks, 1 like
    prior = rates.prior()
    assert prior[0].item() == pytest.approx(4 / 6) and prior[1].item() == pytest.approx(2 / 6)
    assert prior[2].item() == pytest.approx(1 / 6)
    counts = torch.zeros(2, 1 + ACTION_BITS, dtype=torch.int64)
    counts[1, :3] = torch.tensor([30, 30, 0])  # 30 earlier events, all clicked, none liked
    out = rates(counts)
    assert out.shape == (2, ACTION_BITS + 1)
    torch.testing.assert_close(out[0, :ACTION_BITS], prior)  # an unseen video reads the prior
    assert out[0, ACTION_BITS].item() == 0.0
    assert out[1, 0].item() == pytest.approx((30 + SMOOTHING * 4 / 6) / (30 + SMOOTHING))
    assert out[1, 1].item() == pytest.approx(SMOOTHING * 2 / 6 / (30 + SMOOTHING))
    assert out[1, ACTION_BITS].item() == pytest.approx(math.log1p(30) / math.log1p(VOLUME_SCALE))
    with pytest.raises(ValueError, match="expected 9"):
        rates(counts[:, :5])


def test_wide_term_reads_the_counter_rates_as_logits():
    model = build_model(counters_config(), "cpu")
    tower, width = model.tower, model.tower.summary.input_dim
    assert tower.counter_columns == ACTION_BITS + 1 and width == ACTION_BITS + 1 + 2 * ACTION_BITS + 2
    summary = torch.full((1, width), 0.25)
    summary[0, 0], summary[0, ACTION_BITS] = 0.75, 0.4  # the click rate, the volume
    wide = tower.wide_inputs(summary)[0]
    assert wide[0].item() == pytest.approx(math.log(3)) and wide[1].item() == pytest.approx(-math.log(3))
    assert wide[ACTION_BITS].item() == pytest.approx(0.4)  # the volume as it is
    # the history's rates (and recent rates) are shrunk towards a prior, so the wide term reads them as logits too
    assert tower.history_logits
    assert wide[ACTION_BITS + 1].item() == pytest.approx(-math.log(3))
    assert wide[ACTION_BITS + 2 * ACTION_BITS].item() == pytest.approx(-math.log(3))
    assert wide[-2].item() == pytest.approx(0.25) and wide[-1].item() == pytest.approx(0.25)  # length, in_history


def _with_counts(rows: list[dict], seed: int) -> list[dict]:
    """Each candidate's counters: hot videos (clicked by 80% of earlier viewers) or cold ones (10%), and the
    candidate is clicked with probability 0.9 / 0.1 by the same coin. Ids and history say nothing about it."""
    rng = np.random.default_rng(seed)
    for row in rows:
        n = len(row["item_video_id"])
        hot = rng.random(n) < 0.5
        events = rng.integers(10, 60, n)
        clicks = np.where(hot, np.round(events * 0.8), np.round(events * 0.1)).astype(int)
        click = rng.random(n) < np.where(hot, 0.9, 0.1)
        row["item_counts"] = [[int(e), int(c)] + [0] * (ACTION_BITS - 1) for e, c in zip(events, clicks)]
        row["item_action_weight"] = [int(c) for c in click]
    return rows


def test_collate_reads_the_counters_from_rows_and_from_arrow():
    config = counters_config()
    rows = _with_counts(make_rows(4, seed=0), seed=0)
    from_rows, from_arrow = collate(rows, config), collate(pa.Table.from_pylist(rows), config)
    assert from_rows.candidate_counts.shape == (from_rows.num_candidates, 1 + ACTION_BITS)
    assert torch.equal(from_rows.candidate_counts, from_arrow.candidate_counts)
    assert from_rows.candidate_counts[0].tolist() == rows[0]["item_counts"][0]
    assert collate(rows, small_config()).candidate_counts is None  # a model without counters does not read them
    short = [dict(r, item_counts=[c[:3] for c in r["item_counts"]]) for r in rows]
    with pytest.raises(ValueError, match="'item_counts': entry 0 has 3 values; expected 9"):
        collate(short, config)
    with pytest.raises(ValueError, match="lack column 'item_counts'"):
        collate([{k: v for k, v in r.items() if k != "item_counts"} for r in rows], config)


def test_model_learns_a_signal_only_the_counters_carry():
    """The path from the counters to the heads can never silently break: trained on 8 batches, the model
    ranks clicks by the video's earlier click rate for users it never saw; only training batches move the prior."""
    torch.manual_seed(0)
    config = counters_config()
    model = build_model(config, "cpu").train()
    train = [collate(_with_counts(make_rows(32, seed=s), seed=s), config) for s in range(8)]
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    train_steps(model, train, optimizer, 80, config.tasks)
    counted = model.item_counters.label_counts.clone()
    assert counted[0].item() == sum(b.num_candidates for b in train) * 10  # 80 steps = 10 passes
    held_out = _with_counts(make_rows(256, seed=999), seed=999)
    for row in held_out:
        row["user_id"] += 50_000
    assert held_out_auc(model, held_out, config, 0) > 0.8
    assert torch.equal(model.item_counters.label_counts, counted)  # eval forward counts nothing
    # The exported program takes the counters as its last input and carries the prior: it predicts as the model.
    batch = collate(held_out[:16], config)
    program = export_model(model, batch)
    with torch.no_grad():
        torch.testing.assert_close(program.module()(*inference_inputs(batch)), model(batch))
