"""A tiny user-window sample dataset with a planted signal, written as the Spark job would (docs/design.md §4.3).

Each user has a taste topic; videos belong to topic ``video_id % TOPICS``. The history holds mostly videos of
the user's topic, and the first contextual feature is the topic. A candidate is clicked with probability
0.05 + 0.45 [hot video: id < VIDEOS / 3] + 0.45 [of the user's topic], and liked (bit 2) when clicked and
``video_id`` is even with probability 0.7. A model learns the hot videos fast; the topic match needs the
history or the contextual token.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from components.config import PipelineConfig, parse_config
from components.data.id_vocab import (
    ID_VOCAB_FILE,
    extend_ids,
    read_id_vocab,
    snapshot,
    vocab_text,
    vocabulary_tables,
)
from hstu_model.id_rows import IdRows

REPO = Path(__file__).resolve().parents[2]
TOPICS = 3
VIDEOS = 90
CONTEXT = ("user_active_degree", "follow_user_num_range", "fans_user_num_range", "friend_user_num_range",
           "register_days_range")
FIRST_WINDOW = date(2024, 3, 1)


def small_config(work_dir: Path, **kwargs) -> PipelineConfig:
    """configs/small_cpu.config with small tables, a small token budget and its work_dir in ``work_dir``."""
    return parse_config(small_config_text(work_dir, **kwargs), "test_small.config")


def small_config_text(work_dir: Path, *, budget: int = 512, epochs: int = 3, max_steps: int = 0,
                      checkpoint_every: int = 0, tracking_uri: str = "", num_workers: int = 0, extra: str = "") -> str:
    """The text of ``small_config`` (keyword arguments: see there)."""
    base = (REPO / "configs" / "small_cpu.config").read_text()
    base = base[:base.index("data_config")]  # keep the spec block, replace the pipeline sections
    features = "".join(f'feature_configs {{ id_feature {{ feature_name: "{f}" num_buckets: {n} embedding_dim: {d} }} }}\n'
                       for f, n, d in [("user_id", 512, 16), ("video_id", 512, 32), ("item_video_id", 512, 32),
                                       *[(c, 16, 8) for c in CONTEXT]])
    tracking = f'tracking_config {{ tracking_uri: "{tracking_uri}" log_system_metrics: false }}' if tracking_uri \
        else "tracking_config { log_system_metrics: false }"
    text = base + features + f"""
data_config {{ work_dir: "{work_dir}" max_uih_len: 200 max_candidates: 64 train_windows: 3 }}
train_config {{
  batch_token_budget: {budget} epochs: {epochs} max_steps: {max_steps} warmup_steps: 10
  dense_optimizer {{ name: "adamw" lr: 0.003 }} sparse_optimizer {{ name: "rowwise_adagrad" lr: 0.05 }}
  checkpoint_every_steps: {checkpoint_every} shuffle_buffer: 64 num_workers: {num_workers} log_every_steps: 5
  device: "cpu" {extra}
}}
eval_config {{ batch_token_budget: 2048 }}
{tracking}
"""
    return text


def _window_rows(rng: np.random.Generator, users: int, window: date, taste: np.ndarray) -> pa.Table:
    start = int(datetime(window.year, window.month, window.day, tzinfo=UTC).timestamp())
    cols: dict[str, list] = {k: [] for k in ["user_id", *CONTEXT, "video_id", "action_weight", "watch_time",
                                             "action_timestamp", "item_video_id", "item_query_time",
                                             "item_action_weight", "item_watch_time"]}
    for u in range(users):
        n_hist, n_cand = int(rng.integers(4, 20)), int(rng.integers(2, 9))
        topic_hist = np.where(rng.random(n_hist) < 0.8, taste[u], rng.integers(0, TOPICS, n_hist))
        hist = rng.integers(0, VIDEOS // TOPICS, n_hist) * TOPICS + topic_hist
        cand = rng.integers(0, VIDEOS, n_cand)
        p_click = 0.05 + 0.45 * (cand < VIDEOS // 3) + 0.45 * (cand % TOPICS == taste[u])
        click = rng.random(n_cand) < p_click
        like = click & (cand % 2 == 0) & (rng.random(n_cand) < 0.7)
        cols["user_id"].append(1000 + u)
        for i, c in enumerate(CONTEXT):  # the first contextual feature carries the taste, as the history does
            cols[c].append(int(taste[u]) if i == 0 else int((u * (i + 3)) % 7))
        cols["video_id"].append(hist.tolist())
        cols["action_weight"].append(np.where(rng.random(n_hist) < 0.7, 1, 64).tolist())
        cols["watch_time"].append(rng.random(n_hist).round(3).tolist())
        cols["action_timestamp"].append(sorted((start - rng.integers(60, 86400 * 5, n_hist)).tolist()))
        cols["item_video_id"].append(cand.tolist())
        cols["item_query_time"].append(sorted((start + rng.integers(0, 86400, n_cand)).tolist()))
        cols["item_action_weight"].append((click * 1 + like * 2).astype(np.int64).tolist())
        cols["item_watch_time"].append((click * rng.random(n_cand) * 30).round(2).tolist())
    schema = pa.schema([(k, pa.int64()) for k in ["user_id", *CONTEXT]]
                       + [(k, pa.list_(pa.float64() if "watch" in k else pa.int64())) for k in list(cols)[6:]])
    return pa.Table.from_pydict(cols, schema=schema)


def write_samples(work_dir: Path, *, users: int = 240, windows: int = 4, seed: int = 0,
                  files_per_window: int = 2, row_group_size: int = 40) -> list[date]:
    """Writes ``windows`` daily sample partitions (+ statistics JSON and id vocabularies) under ``work_dir``;
    returns the dates."""
    rng = np.random.default_rng(seed)
    taste = rng.integers(0, TOPICS, users)
    dates = [FIRST_WINDOW + timedelta(days=i) for i in range(windows)]
    tables = small_config(work_dir).model.embedding_tables
    vocab: dict = {}
    for d in dates:
        table = _window_rows(rng, users, d, taste)
        # The id vocabularies, grown as the sample job grows them (components/data/id_vocab.py).
        seen = {t.name: np.concatenate([np.asarray(table.column(f).combine_chunks().flatten() if f.endswith("video_id")
                                                   else table.column(f), np.int64) for f in t.feature_names])
                for t in tables if not t.hashed}
        vocab, _ = extend_ids(vocab, d, seen, vocabulary_tables(tables))
        folder = work_dir / "samples" / f"dt={d.isoformat()}"
        folder.mkdir(parents=True, exist_ok=True)
        per_file = -(-table.num_rows // files_per_window)
        for i in range(files_per_window):
            pq.write_table(table.slice(i * per_file, per_file), folder / f"part-{i:05d}.parquet",
                           row_group_size=row_group_size)
        stats = {"rows": table.num_rows, "users": table.num_rows, "quarantined": {"null_user_id": 0},
                 "window": d.isoformat()}
        (work_dir / "stats").mkdir(parents=True, exist_ok=True)
        (work_dir / "stats" / f"dt={d.isoformat()}.json").write_text(json.dumps(stats))
    (work_dir / ID_VOCAB_FILE).parent.mkdir(parents=True, exist_ok=True)
    (work_dir / ID_VOCAB_FILE).write_text(vocab_text(vocab))
    return dates


def id_rows(config: PipelineConfig, before: date = date.max) -> IdRows:
    """The raw id -> row mapping a model trained for window ``before`` gets (default: every id written so far)."""
    known = snapshot(read_id_vocab(config.data.work_dir), before, vocabulary_tables(config.model.embedding_tables))
    return IdRows(config.model, known)
