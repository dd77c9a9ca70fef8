"""Write a KuaiRand-shaped synthetic dataset with its ground truth (docs/design.md §9).

Layout under OUT:
  events/dt=YYYY-MM-DD/part-00000.csv|parquet  the KuaiRand log columns, all int64, by (user_id, time_ms)
  truth/dt=YYYY-MM-DD/part-00000.parquet       user_id, video_id, time_ms + p_<action> (float32), same rows
  user_features/user_features.csv              the sampled real KuaiRand-Pure user rows (+ licence, notice)
  video_features/video_features.csv            the real KuaiRand-Pure video table the videos come from (+ licence)
  _datagen.json                                the parameters and per-day counts
Times are UTC: `date`, `hourmin` and the partition are the UTC calendar of `time_ms`. Streams day by day
and chunk by chunk of users, so memory stays bounded; same arguments, same bytes.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from components.datagen.schema import (
    ACTION_COLUMNS,
    EVENT_COLUMNS,
    LICENSE_FILE,
    TRUTH_COLUMNS,
    TRUTH_KEY,
    VIDEO_FEATURES_FILE,
)
from components.datagen.simulate import simulate_chunk_day
from components.datagen.world import SignalConfig, advance_day, build_world

log = logging.getLogger(__name__)

DEMO_USERS = 3000
DEMO_DAYS = 8
DEFAULT_START_DATE = date(2022, 4, 8)   # KuaiRand-Pure's logs start on 2022-04-08
MANIFEST = "_datagen.json"
_FORMATS = ("csv", "parquet")
_EVENT_SCHEMA = pa.schema([(c, pa.int64()) for c in EVENT_COLUMNS])
_TRUTH_SCHEMA = pa.schema([(c, pa.int64()) for c in TRUTH_KEY] + [(c, pa.float32()) for c in TRUTH_COLUMNS[len(TRUTH_KEY):]])
_NOTICE = """These rows are a sample of user_features_pure.csv from KuaiRand-Pure (Gao et al., "KuaiRand: An
Unbiased Sequential Recommendation Dataset with Randomly Exposed Videos", CIKM 2022), licensed CC BY-SA 4.0
(LICENSE.CC-BY-SA-4.0 beside this file). {renumbered}The event logs beside them are synthetic.
"""


@dataclass(frozen=True)
class GenerateResult:
    """What `generate_dataset` wrote: paths, sizes and the realised label rates per action column."""

    out: Path
    events: int
    users: int
    days: int
    start_date: date
    fmt: str
    seconds: float
    label_rates: dict[str, float]


def _seed_rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, *keys])))


def _to_table(cols: dict[str, np.ndarray], day: date) -> tuple[pa.Table, pa.Table]:
    """Columns of one chunk-day -> (events table in KuaiRand order, truth table)."""
    ms_in_day = cols["time_ms"] % 86_400_000
    full = {
        **{k: v.astype(np.int64) for k, v in cols.items() if not k.startswith("p_")},
        "date": np.full(len(ms_in_day), day.year * 10_000 + day.month * 100 + day.day, dtype=np.int64),
        "hourmin": (ms_in_day // 3_600_000) * 100 + (ms_in_day // 60_000) % 60,
    }
    events = pa.Table.from_arrays([pa.array(full[c]) for c in EVENT_COLUMNS], schema=_EVENT_SCHEMA)
    truth = pa.Table.from_arrays(
        [pa.array(full[c]) for c in TRUTH_KEY] + [pa.array(cols[c]) for c in TRUTH_COLUMNS[len(TRUTH_KEY):]],
        schema=_TRUTH_SCHEMA)
    return events, truth


class _DayWriter:
    """One day's event and truth files, appended chunk by chunk."""

    def __init__(self, out: Path, day: date, fmt: str) -> None:
        ev_dir, tr_dir = out / "events" / f"dt={day.isoformat()}", out / "truth" / f"dt={day.isoformat()}"
        ev_dir.mkdir(parents=True)
        tr_dir.mkdir(parents=True)
        if fmt == "csv":
            # Unquoted header, like the real KuaiRand files; every value is an integer, so nothing needs quotes.
            self.events = pacsv.CSVWriter(ev_dir / "part-00000.csv", _EVENT_SCHEMA,
                                          write_options=pacsv.WriteOptions(quoting_header="none"))
        else:
            self.events = pq.ParquetWriter(ev_dir / "part-00000.parquet", _EVENT_SCHEMA, compression="zstd")
        self.truth = pq.ParquetWriter(tr_dir / "part-00000.parquet", _TRUTH_SCHEMA, compression="zstd")

    def write(self, events: pa.Table, truth: pa.Table) -> None:
        self.events.write_table(events)
        self.truth.write_table(truth)

    def close(self) -> None:
        self.events.close()
        self.truth.close()


def _prepare_out(out: Path, overwrite: bool) -> None:
    ours = [out / "events", out / "truth", out / "user_features", out / "video_features", out / MANIFEST]
    existing = [p for p in ours if p.exists()]
    if existing and not overwrite:
        raise ValueError(f"output {out} already holds generated data ({existing[0].name}); "
                         "pass overwrite=True (--overwrite) or choose an empty folder")
    for p in existing:
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    out.mkdir(parents=True, exist_ok=True)


def _write_user_features(out: Path, rows, renumbered: bool) -> None:
    folder = out / "user_features"
    folder.mkdir(parents=True)
    rows.to_csv(folder / "user_features.csv", index=False, lineterminator="\n")
    shutil.copyfile(LICENSE_FILE, folder / LICENSE_FILE.name)
    note = "Rows were resampled with replacement and user_id renumbered 0..N-1. " if renumbered else ""
    (folder / "NOTICE.md").write_text(_NOTICE.format(renumbered=note))


def _write_video_features(out: Path) -> None:
    """The video table as it is: the sample job reads the videos' tags from it (data_config.video_features_path)."""
    folder = out / "video_features"
    folder.mkdir(parents=True)
    shutil.copyfile(VIDEO_FEATURES_FILE, folder / "video_features.csv")
    shutil.copyfile(LICENSE_FILE, folder / LICENSE_FILE.name)


def _validate(users: int, days: int, fmt: str, seed: int) -> None:
    if fmt not in _FORMATS:
        raise ValueError(f"fmt={fmt!r}; expected one of {_FORMATS}")
    if users < 1 or days < 1:
        raise ValueError(f"users={users}, days={days}; expected both >= 1")
    if seed < 0:
        raise ValueError(f"seed={seed}; expected a non-negative integer")


def generate_dataset(*, out: Path, users: int = DEMO_USERS, days: int = DEMO_DAYS,
                     start_date: date = DEFAULT_START_DATE, seed: int = 0, fmt: str = "csv",
                     signal: SignalConfig | None = None, overwrite: bool = False) -> GenerateResult:
    """Generate `days` days of logs for `users` real KuaiRand-Pure users into `out` (layout: module docstring).

    Args:
        out: output folder (created); refuses to replace earlier output unless `overwrite`.
        users, days: sizes; about 9 events per user and day on the defaults.
        start_date: the first day (UTC); seed: same seed and arguments give byte-identical files.
        fmt: "csv" or "parquet" for the events (truth is always Parquet).
        signal: the planted signal's knobs (defaults: SignalConfig()).
    Returns:
        GenerateResult with the event count and the realised rate of each action column.
    """
    _validate(users, days, fmt, seed)
    cfg, out, t0 = signal or SignalConfig(), Path(out), time.perf_counter()
    _prepare_out(out, overwrite)
    world, state = build_world(users, cfg, _seed_rng(seed, 0))
    _write_user_features(out, world.user_rows, renumbered=world.renumbered)
    _write_video_features(out)
    per_day, positives = {}, np.zeros(len(ACTION_COLUMNS), dtype=np.int64)
    for d in range(days):
        day = start_date + timedelta(days=d)
        day_ms = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)
        if d > 0:
            advance_day(state, cfg, _seed_rng(seed, 1, d))
        writer, count = _DayWriter(out, day, fmt), 0
        for c, lo in enumerate(range(0, users, cfg.chunk_users)):
            uidx = np.arange(lo, min(lo + cfg.chunk_users, users), dtype=np.int64)
            cols = simulate_chunk_day(world, state, cfg, uidx, day_ms, day.weekday() >= 5, _seed_rng(seed, 2, d, c))
            writer.write(*_to_table(cols, day))
            count += len(cols["user_id"])
            positives += np.array([int(cols[a].sum()) for a in ACTION_COLUMNS])
        writer.close()
        per_day[day.isoformat()] = count
        log.info("generated %s: %d events", day.isoformat(), count)
    total = sum(per_day.values())
    rates = {a: float(p / total) if total else float("nan") for a, p in zip(ACTION_COLUMNS, positives)}
    manifest = {"users": users, "days": days, "start_date": start_date.isoformat(), "seed": seed, "format": fmt,
                "events": total, "events_per_day": per_day, "label_rates": rates, "signal": cfg.__dict__}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return GenerateResult(out=out, events=total, users=users, days=days, start_date=start_date, fmt=fmt,
                          seconds=time.perf_counter() - t0, label_rates=rates)
