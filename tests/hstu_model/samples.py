"""Synthetic user-window sample rows (docs/design.md §4.3) with a planted signal, and small model configs for tests.

Signal: each user prefers one of ``NUM_TOPICS`` topics (``video_id % NUM_TOPICS``); most of the history is in
that topic; a candidate is clicked with probability 0.9 when its topic is the preferred one, else 0.1, and
liked when clicked and its id is even. Only the history reveals the topic, so learning it needs the encoder.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from components.config import load_config
from hstu_model.batch import collate
from hstu_model.config import EmbeddingTableConfig, ModelConfig
from hstu_model.losses import multitask_loss, task_labels
from hstu_model.metrics import auc

NUM_TOPICS = 4
NUM_VIDEOS = 64
CONTEXTUAL = ("user_id", "user_active_degree", "follow_user_num_range", "fans_user_num_range",
              "friend_user_num_range", "register_days_range")


def small_tables(config: ModelConfig, video_rows: int = NUM_VIDEOS, other_rows: int = 32) -> ModelConfig:
    """The config with tiny embedding tables (keeps memory and time low).

    The video ids of ``make_rows`` (0..NUM_VIDEOS-1) are rows of the video table as they are; the user ids and
    contextual values are hashed into ``other_rows`` rows, so rows need no vocabulary.
    """
    tables = tuple(dataclasses.replace(t, num_embeddings=video_rows, hashed=False) if t.name == "video_id"
                   else dataclasses.replace(t, num_embeddings=other_rows, hashed=True)
                   for t in config.embedding_tables)
    assert all(isinstance(t, EmbeddingTableConfig) for t in tables)
    return dataclasses.replace(config, embedding_tables=tables)


def small_config(**hstu_changes) -> ModelConfig:
    """configs/small_cpu.config with tiny tables, optionally with changed ``hstu`` fields."""
    config = small_tables(load_config("configs/small_cpu.config").model)
    if hstu_changes:
        config = dataclasses.replace(config, hstu=dataclasses.replace(config.hstu, **hstu_changes))
    return config


def tag_config(num_tags: int) -> ModelConfig:
    """small_config with the video's tag as the side feature of both groups and the history summary on."""
    base = small_config()
    groups = dataclasses.replace(base.feature_groups, uih=("video_id", "video_tag"),
                                 candidate=("item_video_id", "item_video_tag"))
    tags = EmbeddingTableConfig("video_tag", num_tags, 8, ("video_tag", "item_video_tag"), False)
    return dataclasses.replace(base, feature_groups=groups, embedding_tables=(*base.embedding_tables, tags),
                               tower=dataclasses.replace(base.tower, history_summary=True))


def make_rows(num_users: int, seed: int, max_history: int = 12, max_candidates: int = 5,
              min_history: int = 0) -> list[dict]:
    """``num_users`` sample rows with the planted topic signal (one window per user)."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(num_users):
        topic = int(rng.integers(NUM_TOPICS))
        n_hist = int(rng.integers(min_history, max_history + 1))
        n_cand = int(rng.integers(1, max_candidates + 1))
        in_topic = rng.random(n_hist) < 0.85
        videos = np.where(in_topic, rng.integers(0, NUM_VIDEOS // NUM_TOPICS, n_hist) * NUM_TOPICS + topic,
                          rng.integers(0, NUM_VIDEOS, n_hist))
        t0 = 1_650_000_000 + int(rng.integers(0, 86400 * 7))
        hist_ts = t0 + np.sort(rng.integers(0, 86400, n_hist))
        cands = rng.integers(0, NUM_VIDEOS, n_cand)
        cand_ts = t0 + 86400 + np.sort(rng.integers(0, 86400, n_cand))
        match = (cands % NUM_TOPICS) == topic
        click = rng.random(n_cand) < np.where(match, 0.9, 0.1)
        like = click & (cands % 2 == 0)
        row = {f: int(rng.integers(0, 1000)) for f in CONTEXTUAL}
        row["user_id"] = 10_000 + user
        row.update(
            video_id=[int(v) for v in videos],
            action_weight=[int(a) for a in rng.choice([1, 3, 65, 0], n_hist)],
            watch_time=[float(w) for w in rng.random(n_hist) * 60],
            action_timestamp=[int(t) for t in hist_ts],
            item_video_id=[int(v) for v in cands],
            item_query_time=[int(t) for t in cand_ts],
            item_action_weight=[int(c) | (2 * int(lk)) for c, lk in zip(click, like)],
            item_watch_time=[float(w) for w in rng.random(n_cand) * 30],
        )
        rows.append(row)
    return rows


def train_steps(model, batches: list, optimizer, steps: int, tasks) -> list[float]:
    """``steps`` optimizer steps cycling through ``batches``; returns the loss of each step."""
    losses = []
    for step in range(steps):
        batch = batches[step % len(batches)]
        loss, _ = multitask_loss(model(batch), batch, tasks)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def held_out_auc(model, rows: list[dict], config, task: int) -> float:
    """AUC of task ``task`` on rows of users never seen in training, the model in eval mode."""
    batch = collate(rows, config)
    with torch.no_grad():
        scores = model.eval()(batch)[:, task]
    return auc(scores, task_labels(batch, config.tasks)[:, task])
