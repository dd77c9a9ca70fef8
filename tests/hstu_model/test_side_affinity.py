"""The side feature's co-engagement similarity: counts and values by hand, topics recovered from histories, and
the soft match carrying a topic-level signal the exact tag match cannot see."""


import numpy as np
import pytest
import torch
from samples import CONTEXTUAL, held_out_auc, tag_config, train_steps

from hstu_model.batch import collate
from hstu_model.export import export_model, inference_inputs
from hstu_model.history_summary import MATCH_DECAY, RECENT_EVENTS, side_match
from hstu_model.metrics import auc
from hstu_model.model import build_model
from hstu_model.side_affinity import SideAffinity


def test_counts_engaged_pairs_before_the_window_within_each_sample():
    affinity = SideAffinity(10)
    # sample 0: tags [2, 3, 2, 4, 5], actions [click, like, none, click, click]; its last event is the window's.
    # Engaged before the window: 2, 3, 4 -> pairs (2,3), (3,4) at distance 1 and (2,4) at distance 2.
    # sample 1: tags [6, 0, 7], all clicked, no window; row 0 (unknown) is skipped -> (6,7) at distance 1.
    affinity.count(torch.tensor([2, 3, 2, 4, 5, 6, 0, 7]), torch.tensor([1, 2, 0, 1, 1, 1, 1, 1]),
                   torch.tensor([5, 3]), window_lengths=torch.tensor([1, 0]))
    expected = np.zeros((10, 10))
    for a, b in [(2, 3), (3, 4), (2, 4), (6, 7)]:
        expected[a, b] = expected[b, a] = 1
    np.testing.assert_array_equal(affinity.pairs.numpy(), expected)  # no (4, 6): samples never pair


def test_similarity_values_by_hand():
    affinity = SideAffinity(4)
    rows = torch.arange(4)
    a, b = rows[:, None].expand(4, 4), rows[None, :].expand(4, 4)  # every pair
    np.testing.assert_array_equal(affinity.similarity(a, b).numpy(), np.diag([0.0, 1.0, 1.0, 1.0]))  # no counts
    pairs = np.array([[0, 0, 0, 0], [0, 10, 6, 0], [0, 6, 10, 2], [0, 0, 2, 40]], dtype=np.float64)
    affinity.pairs.copy_(torch.from_numpy(pairs))
    n = pairs.sum(1)  # [0, 16, 18, 42], total 76
    pmi = np.log((pairs + 1) / (np.outer(n, n) / 76 + 1))
    # (1, 2): 6 pairs where 16 * 18 / 76 are expected (+1 each), normalised by pmi(2, 2): 10 where 18 * 18 / 76
    expected_12 = np.log(7 / (16 * 18 / 76 + 1)) / np.log(11 / (18 * 18 / 76 + 1))
    sim = affinity.similarity(a, b).numpy()
    assert sim[1, 2] == pytest.approx(min(1.0, expected_12), rel=1e-6)
    assert sim[2, 1] == pytest.approx(min(1.0, pmi[2, 1] / pmi[1, 1]), rel=1e-6)
    assert sim[1, 3] == 0.0 and sim[3, 1] == 0.0  # never engaged together: pmi < 0
    assert sim[0].tolist() == [0.0] * 4 and sim[:, 0].tolist() == [0.0] * 4
    assert np.diag(sim).tolist() == [0.0, 1.0, 1.0, 1.0]


def _topic_histories(num_users: int, seed: int, tags_per_topic: int = 3, topics: int = 6):
    """Each user engages mostly with their favourite topic's tags (tag t + 1 has topic t // tags_per_topic)."""
    rng = np.random.default_rng(seed)
    favourite = rng.integers(0, topics, num_users)
    sides, actions, lengths = [], [], []
    for user in range(num_users):
        n = int(rng.integers(10, 30))
        own = rng.random(n) < 0.6
        topic = np.where(own, favourite[user], rng.integers(0, topics, n))
        sides.append(topic * tags_per_topic + rng.integers(0, tags_per_topic, n) + 1)
        actions.append((rng.random(n) < np.where(own, 0.7, 0.1)).astype(np.int64))
        lengths.append(n)
    return torch.from_numpy(np.concatenate(sides)), torch.from_numpy(np.concatenate(actions)), torch.tensor(lengths)


def test_similarity_recovers_topics_from_co_engagement():
    affinity = SideAffinity(20)
    for seed in range(4):
        affinity.count(*_topic_histories(100, seed))
    rows = torch.arange(1, 19)
    sim = affinity.similarity(rows[:, None].expand(18, 18), rows[None, :].expand(18, 18)).numpy()
    topic = np.arange(18) // 3
    off_diagonal = ~np.eye(18, dtype=bool)
    same = (topic[:, None] == topic[None, :]) & off_diagonal
    different = topic[:, None] != topic[None, :]
    assert sim[same].min() > sim[different].max()
    assert sim[same].mean() > 0.5 and sim[different].mean() < 0.05


def test_soft_match_values_by_hand():
    # history tags [3, 5, 3] (oldest first), actions [click, none, click]; candidates tag 3 and tag 5.
    sim = torch.zeros(8, 8)
    sim[3, 3] = sim[5, 5] = 1.0
    sim[5, 3], sim[3, 5] = 0.5, 0.25  # sim[history tag, candidate tag]
    out = side_match(torch.tensor([3, 5, 3]), torch.tensor([1, 0, 1]), torch.tensor([3]), torch.tensor([3, 5]),
                     torch.tensor([2]), torch.tensor([1, 2]), similarity=lambda a, b: sim[a, b])
    assert out.shape == (2, 2 * (1 + 2 * 2))
    decay = sum(MATCH_DECAY ** k for k in range(RECENT_EVENTS))
    exact, soft = out[:, :5].numpy(), out[:, 5:].numpy()
    np.testing.assert_allclose(exact[1], [1 / 4, 0.0, 0.0, 0.0, 0.0], rtol=1e-6)
    # candidate 3: m = [1, 0.5, 1] -> share 2.5 / 4; the clicks both match fully
    np.testing.assert_allclose(soft[0], [2.5 / 4, 2 / 3, 0.0, (1 + MATCH_DECAY ** 2) / decay, 0.0], rtol=1e-6)
    # candidate 5: m = [0.25, 1, 0.25] -> share 1.5 / 4; clicked events match 0.25 each
    np.testing.assert_allclose(soft[1], [1.5 / 4, 0.5 / 3, 0.0, 0.25 * (1 + MATCH_DECAY ** 2) / decay, 0.0],
                               rtol=1e-6)


def _topic_rows(num_users: int, seed: int, first_user: int = 0) -> list[dict]:
    """Tags 1..18 on 6 topics (3 tags each). A user clicks their favourite topic's videos, shown under two of its
    three tags; a candidate is clicked iff its topic is the favourite, and then it has the third tag, which the
    user's history never showed: the exact tag match says nothing, the tags' co-engagement over users does."""
    rng, rows = np.random.default_rng(seed), []
    for user in range(num_users):
        favourite, hidden = int(rng.integers(0, 6)), int(rng.integers(0, 3))
        shown = [t for t in range(3) if t != hidden]
        n_hist, n_cand = int(rng.integers(6, 14)), int(rng.integers(2, 6))
        own = rng.random(n_hist) < 0.6
        other = (favourite + rng.integers(1, 6, n_hist)) % 6
        hist_tag = np.where(own, favourite * 3 + rng.choice(shown, n_hist), other * 3 + rng.integers(0, 3, n_hist)) + 1
        clicks = own & (rng.random(n_hist) < 0.8)
        positive = rng.random(n_cand) < 0.5
        other = (favourite + rng.integers(1, 6, n_cand)) % 6
        cand_tag = np.where(positive, favourite * 3 + hidden, other * 3 + rng.integers(0, 3, n_cand)) + 1
        t0 = 1_650_000_000 + int(rng.integers(0, 86400))
        row = {f: int(rng.integers(0, 30)) for f in CONTEXTUAL}
        row.update(user_id=first_user + user, video_id=rng.integers(0, 64, n_hist).tolist(),
                   video_tag=hist_tag.tolist(), action_weight=clicks.astype(int).tolist(), watch_time=[1.0] * n_hist,
                   action_timestamp=[t0 + 60 * i for i in range(n_hist)],
                   item_video_id=rng.integers(0, 64, n_cand).tolist(), item_video_tag=cand_tag.tolist(),
                   item_query_time=[t0 + 86400 + 60 * i for i in range(n_cand)],
                   item_action_weight=positive.astype(int).tolist(), item_watch_time=[0.0] * n_cand)
        rows.append(row)
    return rows


def test_model_learns_a_topic_signal_through_the_counted_similarity():
    """Clicked iff the candidate's topic is the user's favourite, under a tag the history never showed: the
    model must learn it on unseen users, which only the counted similarity makes possible. The counts grow in
    training mode only, travel with the model's state, and stay fixed while it scores."""
    torch.manual_seed(0)
    config = tag_config(20)
    model = build_model(config, "cpu").train()
    assert "side_affinity.pairs" in model.state_dict()
    held_out = _topic_rows(256, seed=999, first_user=50_000)
    # Before training, the history's tag matches separate nothing: every positive candidate has a new tag.
    batch = collate(held_out, config)
    exact = side_match(batch.uih_ids["video_tag"], batch.uih_action, batch.uih_lengths,
                       batch.candidate_ids["item_video_tag"], batch.candidate_lengths, torch.tensor([1]))
    labels = torch.tensor([float(y) for r in held_out for y in r["item_action_weight"]])
    assert auc(exact[:, 2], labels) < 0.55  # the recency-weighted match of clicked events
    train = [collate(_topic_rows(32, seed=s), config) for s in range(8)]
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    train_steps(model, train, optimizer, 80, config.tasks)
    counted = model.side_affinity.pairs.clone()
    assert counted.sum() > 0
    assert held_out_auc(model, held_out, config, 0) > 0.9
    assert torch.equal(model.side_affinity.pairs, counted)  # scoring counted nothing
    # The exported program carries the counts: it predicts as the eager model does.
    program = export_model(model, batch)
    with torch.no_grad():
        torch.testing.assert_close(program.module()(*inference_inputs(batch)), model(batch))
