"""The streaming sample loader: token-budget batches, sharding over readers, exact resume."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from train_data import FIRST_WINDOW, id_rows, small_config, write_samples

from components.data.windows import sample_files
from components.training.loader import (
    LoaderPosition,
    StreamConfig,
    make_loader,
    pack_by_tokens,
)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    work = tmp_path_factory.mktemp("loader")
    dates = write_samples(work, users=120, windows=2)
    config = small_config(work)
    return config, sample_files(work, dates)


@settings(max_examples=200, deadline=None)
@given(tokens=st.lists(st.integers(1, 64), max_size=60), budget=st.integers(64, 300))
def test_token_budget_packing_never_exceeds_budget_and_keeps_order(tokens, budget):
    batches = list(pack_by_tokens(((i, t) for i, t in enumerate(tokens)), budget))
    assert [i for b in batches for i in b] == list(range(len(tokens)))
    for b in batches:
        assert sum(tokens[i] for i in b) <= budget
    for left, right in itertools.pairwise(batches):  # a batch is closed only when the next item did not fit
        assert sum(tokens[i] for i in left) + tokens[right[0]] > budget


def test_packing_rejects_a_sample_larger_than_the_budget():
    with pytest.raises(ValueError, match="exceeds the batch token budget 10"):
        list(pack_by_tokens([("a", 11)], 10))


def _users(batches) -> list[int]:
    return [u for _, b in batches for u in torch.unique_consecutive(b.user_ids).tolist()]


@pytest.mark.parametrize("budget", [320, 777])
def test_loader_batches_stay_within_budget_and_cover_every_sample_once(dataset, budget):
    config, files = dataset
    stream = StreamConfig(token_budget=budget, shuffle_buffer=16, shuffle_units=True, seed=3, num_roles=2,
                          worker_processes=True)
    batches = list(make_loader(files, config.model, stream, id_rows=id_rows(config)))
    assert all(b.num_tokens <= budget for _, b in batches)
    assert {r for r, _ in batches} == {0, 1}  # both worker processes contributed
    samples = sum(b.batch_size for _, b in batches)
    assert samples == 240  # 120 users x 2 windows, each exactly once
    users = _users(batches)
    assert sorted(set(users)) == list(range(1000, 1120))


def test_loader_shards_ranks_disjointly(dataset):
    config, files = dataset
    per_rank = [sum(b.batch_size for _, b in make_loader(files, config.model, id_rows=id_rows(config), stream=StreamConfig(
        token_budget=512, rank=r, world_size=2))) for r in range(2)]
    assert sum(per_rank) == 240 and min(per_rank) > 0


def test_resumed_loader_continues_with_the_same_batches(dataset):
    config, files = dataset
    stream = StreamConfig(token_budget=400, shuffle_buffer=32, shuffle_units=True, seed=11, num_roles=2,
                          worker_processes=True)
    full = list(make_loader(files, config.model, stream, LoaderPosition(epoch=1), id_rows(config)))
    k = 5  # odd: the resumed loader must start with the second role
    position = LoaderPosition(epoch=1)
    for role, _ in full[:k]:
        position.advance(role, 2)
    rest = list(make_loader(files, config.model, stream, LoaderPosition.from_dict(position.to_dict()), id_rows(config)))
    assert len(rest) == len(full) - k
    for (r1, a), (r2, b) in zip(full[k:], rest):
        assert r1 == r2
        torch.testing.assert_close(a.uih_timestamp, b.uih_timestamp)
        torch.testing.assert_close(a.user_ids, b.user_ids)


def test_epochs_are_shuffled_differently(dataset):
    config, files = dataset
    stream = StreamConfig(token_budget=512, shuffle_buffer=32, shuffle_units=True, seed=5)
    first = _users(make_loader(files, config.model, stream, LoaderPosition(epoch=0), id_rows(config)))
    second = _users(make_loader(files, config.model, stream, LoaderPosition(epoch=1), id_rows(config)))
    assert sorted(first) == sorted(second) and first != second


def test_missing_window_names_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"dt={FIRST_WINDOW.isoformat()}"):
        sample_files(tmp_path, [FIRST_WINDOW])


def test_budget_below_max_seq_len_is_refused(dataset):
    config, files = dataset
    with pytest.raises(ValueError, match="below max_seq_len 320"):
        make_loader(files, config.model, id_rows=id_rows(config), stream=StreamConfig(token_budget=100))
