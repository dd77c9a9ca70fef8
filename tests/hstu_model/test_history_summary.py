"""The tower's history summary: values checked by hand, and a rare task learned from the history alone."""

import dataclasses

import numpy as np
import pytest
import torch
from samples import CONTEXTUAL, held_out_auc, small_config, tag_config, train_steps

from components.training.wide_prefit import prefit_wide
from hstu_model.batch import collate
from hstu_model.config import TaskConfig
from hstu_model.history_summary import (
    HISTORY_SMOOTHING,
    MATCH_DECAY,
    RECENT_EVENTS,
    HistoryPrior,
    history_summary,
    side_match,
)
from hstu_model.losses import task_labels
from hstu_model.metrics import auc
from hstu_model.model import build_model

COMMENT = 8


def test_summary_values_by_hand():
    # sample 0: 3 events (click, click+comment, none); sample 1: no history
    actions = torch.tensor([1, 1 | COMMENT, 0])
    out = history_summary(actions, torch.tensor([3, 0]), torch.tensor([5, 6, 7]), torch.tensor([6, 9, 6]),
                          torch.tensor([2, 1]), torch.tensor([1, COMMENT]), max_seq_len=99, num_items=10)
    assert out.shape == (3, 2 * 2 + 2)
    # rates over the history: click 2/(3+1), comment 1/(3+1); the recent window holds all 3 events here
    np.testing.assert_allclose(out[0, :4].numpy(), [0.5, 0.25, 0.5, 0.25])
    np.testing.assert_allclose(out[0, 4].item(), np.log1p(3) / np.log1p(99), rtol=1e-6)
    # candidate 6 is in sample 0's history, 9 is not; sample 1's candidate 6 is not in *its* (empty) history
    assert out[:, 5].tolist() == [1.0, 0.0, 0.0]
    assert out[2, :5].tolist() == [0.0, 0.0, 0.0, 0.0, 0.0]


def test_query_time_summary_counts_the_window_events_before_each_candidate():
    # one sample: 2 events before the window (click, none), then the window's 3 events = its 3 candidates
    actions = torch.tensor([1, 0, 1 | COMMENT, 1, 0])
    items = torch.tensor([5, 6, 7, 8, 9])
    out = history_summary(actions, torch.tensor([5]), items, torch.tensor([7, 8, 6]), torch.tensor([3]),
                          torch.tensor([1, COMMENT]), max_seq_len=99, num_items=10, window_lengths=torch.tensor([3]))
    # candidate 0 sees 2 events (1 click), candidate 1 three (2 clicks, 1 comment), candidate 2 four (3, 1)
    np.testing.assert_allclose(out[:, 0].numpy(), [1 / 3, 2 / 4, 3 / 5])
    np.testing.assert_allclose(out[:, 1].numpy(), [0.0, 1 / 4, 1 / 5])
    np.testing.assert_allclose(out[:, 4].numpy(), np.log1p([2, 3, 4]) / np.log1p(99), rtol=1e-6)
    assert out[:, 5].tolist() == [0.0, 0.0, 1.0]  # only item 6 was seen before the window


def test_recent_rates_count_only_the_last_events():
    n = RECENT_EVENTS + 10
    actions = torch.tensor([COMMENT] * 10 + [0] * RECENT_EVENTS)  # comments only in the 10 oldest events
    out = history_summary(actions, torch.tensor([n]), torch.arange(n), torch.tensor([0]), torch.tensor([1]),
                          torch.tensor([COMMENT]), max_seq_len=64, num_items=n)
    assert out[0, 0].item() == pytest.approx(10 / (n + 1))
    assert out[0, 1].item() == 0.0


def _rows(num_users: int, seed: int, first_user: int = 10_000) -> list[dict]:
    """Users who commented before comment again (p 0.8), the others almost never (p 0.03)."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(num_users):
        commenter = bool(rng.random() < 0.3)
        n_hist, n_cand = int(rng.integers(4, 12)), int(rng.integers(1, 6))
        hist_actions = rng.choice([0, 1], n_hist) | np.where(rng.random(n_hist) < (0.4 if commenter else 0.0),
                                                              COMMENT | 1, 0)
        t0 = 1_650_000_000 + int(rng.integers(0, 86400))
        comment = rng.random(n_cand) < (0.8 if commenter else 0.03)
        row = {f: int(rng.integers(0, 30)) for f in CONTEXTUAL}
        row.update(user_id=first_user + user, video_id=[int(v) for v in rng.integers(0, 64, n_hist)],
                   action_weight=[int(a) for a in hist_actions], watch_time=[1.0] * n_hist,
                   action_timestamp=[t0 + 60 * i for i in range(n_hist)],
                   item_video_id=[int(v) for v in rng.integers(0, 64, n_cand)],
                   item_query_time=[t0 + 86400 + 60 * i for i in range(n_cand)],
                   item_action_weight=[int(c) * (COMMENT | 1) for c in comment], item_watch_time=[0.0] * n_cand)
        rows.append(row)
    return rows


# The encoder alone finds the signal late and abruptly (chance at 200 steps, 0.82 at 300 in one run), the
# summary within 120 steps: the reason the summary exists (benchmarks/results/QUALITY_NOTES.md).
@pytest.mark.parametrize("summary, steps", [(True, 120), (False, 450)], ids=["with_summary", "encoder_only"])
def test_rare_task_head_learns_from_the_action_history(summary, steps):
    """The comment head must separate past commenters from the others, with or without the summary: the
    path from the history's action bits to a rare task's head (through the encoder, and through the summary)
    can never silently break. User ids are new in the held-out rows, so only the history can tell."""
    torch.manual_seed(0)
    base = small_config()
    tasks = (base.tasks[0], TaskConfig("is_comment", "item_action_weight", COMMENT, ("auc",)))
    tower = dataclasses.replace(base.tower, history_summary=summary, id_bias=summary)
    config = dataclasses.replace(base, tasks=tasks, tower=tower)
    train = [collate(_rows(32, seed=s), config) for s in range(12)]
    model = build_model(config, "cpu").train()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    train_steps(model, train, optimizer, steps, config.tasks)
    assert held_out_auc(model, _rows(256, seed=999, first_user=50_000), config, 1) > (0.85 if summary else 0.75)


def test_id_bias_starts_at_zero_and_learns_a_per_item_rate():
    """The wide part adds nothing before training, and learns that one item is always clicked."""
    torch.manual_seed(0)
    base = small_config()
    config = dataclasses.replace(base, tower=dataclasses.replace(base.tower, id_bias=True))
    rows = _rows(64, seed=1)
    for row in rows:  # item 7 is always clicked, every other item never
        row["item_action_weight"] = [1 if v == 7 else 0 for v in row["item_video_id"]]
    batch = collate(rows, config)
    model = build_model(config, "cpu").train()
    with torch.no_grad():
        assert torch.count_nonzero(model.id_bias(batch.contextual, batch.candidate_ids, batch.uih_lengths,
                                                 batch.candidate_lengths)) == 0
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    train_steps(model, [batch], optimizer, 60, config.tasks)
    seen = batch.candidate_ids["item_video_id"].unique()
    table = model.id_bias.lookup.collections["bias"].embeddings["video_id_bias"].weight  # [rows, T rounded up to 4]
    item_bias = table[seen, 0]  # the click bias of each item seen
    assert 7 in seen.tolist() and item_bias[seen == 7].item() > item_bias[seen != 7].max().item() + 0.2


def _commenters_with_summary():
    """A click + comment config with the history summary, its fresh model (training mode) and 6 batches of
    ``_rows``."""
    torch.manual_seed(0)
    base = small_config()
    tasks = (base.tasks[0], TaskConfig("is_comment", "item_action_weight", COMMENT, ("auc",)))
    config = dataclasses.replace(base, tasks=tasks, tower=dataclasses.replace(base.tower, history_summary=True))
    return config, build_model(config, "cpu").train(), [collate(_rows(32, seed=s), config) for s in range(6)]


def test_wide_summary_term_starts_at_zero_and_alone_learns_who_comments():
    """The linear term on the log action rates changes nothing before training; trained alone (every other
    weight frozen) it separates past commenters from the others on users it never saw."""
    config, model, train = _commenters_with_summary()
    wide = model.tower.summary_wide
    with torch.no_grad():
        with_wide = model.eval()(train[0])
        model.tower.summary_wide = None
        without = model(train[0])
        model.tower.summary_wide = wide
    assert torch.equal(with_wide, without)
    model.train()
    optimizer = torch.optim.Adam(wide.parameters(), lr=5e-2)
    train_steps(model, train, optimizer, 120, config.tasks)
    assert held_out_auc(model, _rows(256, seed=999, first_user=50_000), config, 1) > 0.85


def test_prefit_wide_fits_the_linear_term_before_any_step_and_it_alone_finds_who_comments():
    """train_config.prefit_wide: two passes without gradients count the priors, then fit the linear term; the
    term alone (the deep part left out) separates past commenters from the others on users it never saw."""
    config, model, train = _commenters_with_summary()
    rates = prefit_wide(model, lambda: iter(train), config.tasks, torch.device("cpu"))
    assert model.training and 0 < rates["is_comment"] < 1
    # the first pass counted each history event once, the second (eval mode) none
    assert model.history_prior.event_counts[0].item() == sum(int(b.uih_lengths.sum()) for b in train)
    held = collate(_rows(256, seed=999, first_user=50_000), config)
    with torch.no_grad():
        model.eval()
        wide = model.tower.summary_wide(model.tower.wide_inputs(model.history_summary(held)))
    assert auc(wide[:, 1], task_labels(held, config.tasks)[:, 1]) > 0.85


def test_side_match_values_by_hand():
    # sample 0: history tags [3, 5, 3] (oldest first) with actions [click, none, click]; candidates tag 3 and 7.
    # sample 1: no history, one candidate with tag 3. Row 0 (unknown) never matches.
    out = side_match(torch.tensor([3, 5, 3]), torch.tensor([1, 0, 1]), torch.tensor([3, 0]),
                     torch.tensor([3, 7, 3]), torch.tensor([2, 1]), torch.tensor([1, 2]))
    assert out.shape == (3, 1 + 2 * 2)
    decay = sum(MATCH_DECAY ** k for k in range(RECENT_EVENTS))
    # tag 3: 2 of 3 events match (share 2/4); both clicks match (2/(2+1)); no event has bit 2 (0/(0+1));
    # recency: the matching clicks are the newest (weight 1) and the third newest (weight 0.8^2)
    np.testing.assert_allclose(out[0].numpy(), [2 / 4, 2 / 3, 0.0, (1 + MATCH_DECAY ** 2) / decay, 0.0], rtol=1e-6)
    assert out[1].tolist() == [0.0] * 5  # tag 7 matches nothing
    assert out[2].tolist() == [0.0] * 5  # no history


def test_side_match_at_query_time_sees_only_the_window_events_before_the_candidate():
    # one sample: 1 event before the window (tag 4, click), then the window's 2 events (tags 4, 4; click, click),
    # which are also the 2 candidates (tags 4, 4). Candidate 0 sees the first event only, candidate 1 two.
    out = side_match(torch.tensor([4, 4, 4]), torch.tensor([1, 1, 1]), torch.tensor([3]), torch.tensor([4, 4]),
                     torch.tensor([2]), torch.tensor([1]), window_lengths=torch.tensor([2]))
    np.testing.assert_allclose(out[:, 0].numpy(), [1 / 2, 2 / 3], rtol=1e-6)
    np.testing.assert_allclose(out[:, 1].numpy(), [1 / 2, 2 / 3], rtol=1e-6)


def _tag_rows(num_users: int, seed: int, first_user: int = 0) -> list[dict]:
    """Rows with a video tag (video % 8 + 1); a candidate is clicked iff its tag is among the tags of the clicked
    events in its history (the short-term interest the side match hands the tower)."""
    rng, rows = np.random.default_rng(seed), []
    for user in range(num_users):
        n_hist, n_cand = int(rng.integers(3, 12)), int(rng.integers(1, 6))
        hist, cand = rng.integers(0, 64, n_hist), rng.integers(0, 64, n_cand)
        clicks = rng.random(n_hist) < 0.3
        liked_tags = {int(v) % 8 + 1 for v, c in zip(hist, clicks) if c}
        t0 = 1_650_000_000 + int(rng.integers(0, 86400))
        row = {f: int(rng.integers(0, 30)) for f in CONTEXTUAL}
        row.update(user_id=first_user + user, video_id=hist.tolist(), video_tag=[int(v) % 8 + 1 for v in hist],
                   action_weight=clicks.astype(int).tolist(), watch_time=[1.0] * n_hist,
                   action_timestamp=[t0 + 60 * i for i in range(n_hist)], item_video_id=cand.tolist(),
                   item_video_tag=[int(v) % 8 + 1 for v in cand],
                   item_query_time=[t0 + 86400 + 60 * i for i in range(n_cand)],
                   item_action_weight=[int(int(v) % 8 + 1 in liked_tags) for v in cand], item_watch_time=[0.0] * n_cand)
        rows.append(row)
    return rows


def test_side_match_hands_the_tower_the_short_term_interest():
    """With a side feature (the video's tag) in both groups, the summary carries the tag match, and the model
    learns "clicked iff the candidate's tag was clicked in the history" on users it never saw: the path from a
    side feature to the heads can never silently break."""
    torch.manual_seed(0)
    config = tag_config(16)
    model = build_model(config, "cpu").train()
    assert model.tower.summary.input_dim == 6 * len(config.hstu.preprocessor.action_weights) + 4
    train = [collate(_tag_rows(32, seed=s), config) for s in range(8)]
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    train_steps(model, train, optimizer, 80, config.tasks)
    assert held_out_auc(model, _tag_rows(256, seed=999, first_user=50_000), config, 0) > 0.9


def test_rates_shrink_towards_the_training_histories_pooled_rate():
    prior = HistoryPrior(2)
    torch.testing.assert_close(prior.prior(), torch.tensor([0.5, 0.5]))  # nothing counted yet
    prior.count(torch.tensor([1, 1 | COMMENT, 0, 1]), torch.tensor([1, COMMENT]))
    torch.testing.assert_close(prior.prior(), torch.tensor([4 / 6, 2 / 6]))  # (3 + 1) / (4 + 2), (1 + 1) / (4 + 2)
    # sample 0: 3 events (click, click+comment, none); sample 1: no history reads the prior itself
    p = torch.tensor([0.4, 0.1])
    out = history_summary(torch.tensor([1, 1 | COMMENT, 0]), torch.tensor([3, 0]), torch.tensor([5, 6, 7]),
                          torch.tensor([6, 9, 6]), torch.tensor([2, 1]), torch.tensor([1, COMMENT]), max_seq_len=99,
                          num_items=10, prior=p)
    s = HISTORY_SMOOTHING
    expected = [(2 + s * 0.4) / (3 + s), (1 + s * 0.1) / (3 + s)]
    np.testing.assert_allclose(out[0, :4].numpy(), expected * 2, rtol=1e-6)  # the recent window holds all 3
    np.testing.assert_allclose(out[2, :4].numpy(), [0.4, 0.1, 0.4, 0.1], rtol=1e-6)
    assert out[:, 5].tolist() == [1.0, 0.0, 0.0]  # length and in_history do not change


def test_the_model_counts_the_prior_only_while_training():
    config = dataclasses.replace(small_config(), tower=dataclasses.replace(small_config().tower, history_summary=True))
    model = build_model(config, "cpu")
    batch = collate(_rows(8, seed=0), config)
    model.eval()(batch)
    assert model.history_prior.event_counts[0].item() == 0
    model.train()(batch)
    assert model.history_prior.event_counts[0].item() == batch.uih_action.numel() > 0
