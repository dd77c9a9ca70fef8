"""The learning curve on generated data: samples for a data size, on a machine with or without Spark.

The GPU machine has no Java (so no Spark) and no scikit-learn or LightGBM, and the samples of 30,000 users
are too large to carry there. So one measurement is made in two halves on the same generated logs (the
generator is deterministic for a seed):

- ``prepare``: generate the logs and build the samples of the last four windows, with the pipeline's Spark
  job (``--builder spark``) or with the pandas reference (``--builder reference``; tests keep the two equal row
  for row). Prints one fingerprint per window (a hash of every sample row) so both halves can show they
  trained and scored the same samples.
- ``references``: the oracle and baseline AUCs of the eval window (``components.training.evaluate.references``)
  on samples built here.
- the model itself trains with ``bench_quality_diagnose.py`` (the trainer's real step) on the GPU machine.

    python benchmarks/bench_quality_curve.py prepare --users 30000 --work /tmp/curve/u30000 --builder reference
    python benchmarks/bench_quality_curve.py references --users 30000 --work /tmp/curve/u30000 \
        --config configs/small_cpu.config --out curve_refs.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from components.config import PipelineConfig, apply_overrides, load_config  # noqa: E402
from components.data.id_vocab import ID_VOCAB_FILE, extend_ids, vocab_text, vocabulary_tables  # noqa: E402
from components.data.sample_names import SampleNames  # noqa: E402
from components.data.samples_ref import build_samples_ref  # noqa: E402
from components.data.windows import sample_files, window_dir  # noqa: E402
from components.datagen import generate_dataset  # noqa: E402
from components.id_features import MISSING_SIDE_VALUE, SIDE_FEATURES  # noqa: E402

START = date(2022, 4, 8)
DAYS = 8
WINDOWS = 4  # three training windows and the eval window, as bench_quality_scale.py


def windows(days: int = DAYS) -> list[date]:
    last = START + timedelta(days=days - 1)
    return [last - timedelta(days=k) for k in range(WINDOWS - 1, -1, -1)]


def _config(path: Path, work: Path) -> PipelineConfig:
    return apply_overrides(load_config(path), work_dir=str(work))


def _raw_events(raw: Path) -> pd.DataFrame:
    frames = []
    for folder in sorted((raw / "events").glob("dt=*")):
        for file in sorted(folder.glob("*.csv")):
            frame = pd.read_csv(file)
            frame["dt"] = date.fromisoformat(folder.name[3:])
            frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _contextual(raw: Path, names: SampleNames) -> pd.DataFrame:
    """User features as ids, as the Spark job maps them (values as trimmed text, vocab from empty)."""
    from components.data.vocab import extend_vocab  # imports pyspark: not on the GPU machine (--contextual)

    columns = [c for c in names.contextual if c != "user_id"]
    feats = pd.read_csv(raw / "user_features" / "user_features.csv", dtype=str)
    feats = feats[["user_id", *columns]].apply(lambda s: s.str.strip())
    feats["user_id"] = pd.to_numeric(feats["user_id"], errors="coerce")
    feats = feats.dropna(subset=["user_id"]).sort_values(["user_id", *columns]).drop_duplicates("user_id")
    vocab = extend_vocab({}, {c: feats[c].dropna().tolist() for c in columns})
    out = pd.DataFrame({"user_id": feats["user_id"].astype("int64")})
    for c in columns:
        out[c] = feats[c].map(vocab[c]).fillna(0).astype("int64")
    return out


def _side_values(raw: Path, feature: str) -> dict[int, int]:
    """video id -> the side feature's value: the first id of its column, as components/data/side_features.py
    reads the video table (the generator's, under ``raw``: sources.video_features_file imports pyspark, which the
    GPU machine lacks)."""
    column = SIDE_FEATURES[feature]
    table = pd.read_csv(raw / "video_features" / "video_features.csv", dtype=str, usecols=["video_id", column])
    first = pd.to_numeric(table[column].str.split(",").str[0].str.strip(), errors="coerce")
    table = pd.DataFrame({"video_id": pd.to_numeric(table["video_id"], errors="coerce"),
                          "value": first.fillna(MISSING_SIDE_VALUE)}).dropna(subset=["video_id"])
    values = table.groupby("video_id")["value"].min()
    return {int(k): int(v) for k, v in values.items()}


def _reference_window(args: tuple) -> tuple[date, pd.DataFrame]:
    events, contextual, side_values, window, config = args
    data = config.data
    return window, build_samples_ref(events, contextual, window_start=window, window_days=data.window_days,
                                     max_uih_len=data.max_uih_len, max_candidates=data.max_candidates,
                                     names=SampleNames.from_config(config), query_time=data.query_time,
                                     side_values=side_values)


def _seen_ids(frame: pd.DataFrame, config: PipelineConfig) -> dict[str, np.ndarray]:
    """Table -> the raw ids of one window's samples (list columns flattened), as the Spark job collects them."""
    seen = {}
    for table in config.model.embedding_tables:
        parts = []
        for feature in table.feature_names:
            column = frame[feature]
            parts.append(np.concatenate([np.asarray(v, np.int64) for v in column]) if len(column) and
                         isinstance(column.iloc[0], (list, np.ndarray)) else column.to_numpy(np.int64))
        seen[table.name] = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    return seen


def _write_id_vocab(config: PipelineConfig, frames: dict[date, pd.DataFrame]) -> None:
    """The id vocabularies the sample job would have grown over these windows, in window order."""
    vocab: dict = {}
    for window in sorted(frames):
        vocab, _ = extend_ids(vocab, window, _seen_ids(frames[window], config),
                              vocabulary_tables(config.model.embedding_tables))
    path = Path(config.data.work_dir) / ID_VOCAB_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(vocab_text(vocab))


def _write_reference(config: PipelineConfig, raw: Path, jobs: int, contextual_file: Path | None) -> None:
    events, names = _raw_events(raw), SampleNames.from_config(config)
    if contextual_file:
        contextual = pd.read_parquet(contextual_file)
    else:
        contextual = _contextual(raw, names)
        contextual.to_parquet(Path(config.data.work_dir) / "contextual.parquet", index=False)
    side = names.side_feature
    side_values = _side_values(raw, side) if side else None
    todo = [(events, contextual, side_values, w, config) for w in windows()]
    frames = {}
    with mp.get_context("fork").Pool(min(jobs, len(todo))) as pool:
        for window, frame in pool.imap_unordered(_reference_window, todo):
            folder = window_dir(config.data.work_dir, window)
            folder.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), folder / "part-00000.parquet")
            frames[window] = frame
    _write_id_vocab(config, frames)


def fingerprint(work: Path, window: date) -> dict:
    """Row count, candidate count and a hash of every row's ids, actions and times, independent of file order."""
    frame = pd.concat([pd.read_parquet(f) for f in sample_files(work, [window])], ignore_index=True)
    frame = frame.sort_values("user_id")
    digest = hashlib.sha256()
    for row in frame.itertuples(index=False):
        digest.update(repr([v.tolist() if hasattr(v, "tolist") else v for v in row]).encode())
    return {"window": window.isoformat(), "samples": len(frame),
            "candidates": int(frame.iloc[:, -4].map(len).sum()), "sha256": digest.hexdigest()[:16]}


def prepare(args: argparse.Namespace) -> None:
    t0 = time.perf_counter()
    config = _config(args.config, args.work)
    raw = args.work / "raw"
    if not raw.exists():
        generate_dataset(out=raw, users=args.users, days=DAYS, start_date=START, seed=args.seed)
    if args.builder == "spark":
        from components.data.samples import build_samples
        build_samples(config=config, window_starts=windows())
    else:
        _write_reference(config, raw, args.jobs, args.contextual)
    rows = [fingerprint(args.work, w) for w in windows()]
    print(json.dumps({"users": args.users, "builder": args.builder, "history_mode": config.data.history_mode,
                      "seconds": round(time.perf_counter() - t0, 1), "windows": rows}), flush=True)


def references(args: argparse.Namespace) -> None:
    from components.training.evaluate import reference_aucs

    config = _config(args.config, args.work)
    *train, last = windows()
    refs = reference_aucs(config, last, train_windows=train)
    row = {"users": args.users, "history_mode": config.data.history_mode, "eval_window": last.isoformat(),
           "train_windows": [w.isoformat() for w in train], "config": str(args.config),
           "references": {k: {t: round(v, 4) for t, v in d.items()} for k, d in refs.items()},
           "windows": [fingerprint(args.work, w) for w in windows()]}
    print(json.dumps(row), flush=True)
    if args.out:
        previous = json.loads(args.out.read_text()) if args.out.exists() else []
        args.out.write_text(json.dumps(previous + [row], indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("prepare", "references"):
        p = sub.add_parser(name)
        p.add_argument("--users", type=int, required=True)
        p.add_argument("--work", type=Path, required=True)
        p.add_argument("--config", type=Path, default=REPO / "configs" / "small_cpu.config")
        p.add_argument("--seed", type=int, default=0)
    sub.choices["prepare"].add_argument("--builder", choices=["spark", "reference"], default="spark")
    sub.choices["prepare"].add_argument("--jobs", type=int, default=4)
    sub.choices["prepare"].add_argument("--contextual", type=Path, default=None,
                                        help="the user id -> contextual ids table a run without Spark wrote "
                                             "(work dir's contextual.parquet), for a machine without pyspark")
    sub.choices["references"].add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    {"prepare": prepare, "references": references}[args.command](args)


if __name__ == "__main__":
    main()
