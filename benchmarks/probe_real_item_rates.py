"""How much an item's recent engagement says on real logs, measured with plain pandas before building anything.

On a KuaiRand ``log_standard`` log in the pipeline's raw layout, every event of the evaluation day and of the
training days before it gets (no label of the event itself or of any later event):
- the user's smoothed rate per task over the days before the event's day (what the history rate sees),
- the item's smoothed rate per task over the days before the event's day (what a daily item bias learns),
- the item's counters over the H hours before the event (every user; strictly earlier milliseconds), for H in
  ``--hours``: what ``data_config.item_counter_days`` hands the model, at several horizons.
A logistic regression per task on the logits of those rates (and log1p of the counter's events), fitted on the
training days, is scored on the evaluation day. Rates are shrunk towards the training rate with 20
pseudo-events, as the baseline suite does.

    .venv/bin/python benchmarks/probe_real_item_rates.py --logs PATH/logs

Appends one row to ``benchmarks/results/quality_item_rates_probe.json`` and prints the table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_common import RESULTS, commit  # noqa: E402

TASKS = ("is_click", "long_view", "is_comment", "is_profile_enter")
SMOOTHING = 20.0
HOUR_MS = 3_600_000


def _smooth(pos, n, prior: float) -> np.ndarray:
    return (np.asarray(pos, np.float64) + SMOOTHING * prior) / (np.asarray(n, np.float64) + SMOOTHING)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


def read_log(logs: Path) -> pd.DataFrame:
    events = pd.concat(pd.read_csv(f) for f in sorted(logs.glob("dt=*/*.csv")))
    events["day"] = pd.to_datetime(events["time_ms"], unit="ms").dt.floor("D")
    return events.sort_values(["video_id", "time_ms"]).reset_index(drop=True)


def day_rates(events: pd.DataFrame, first_day: pd.Timestamp) -> pd.DataFrame:
    """Events from ``first_day`` on, with ``<key>_<task>``: user / item rates over the days before each day."""
    out = []
    for day in sorted(events["day"].unique()):
        if day < first_day:
            continue
        before, rows = events[events["day"] < day], events[events["day"] == day].copy()
        for key, name in (("user_id", "user"), ("video_id", "item")):
            by = before.groupby(key)
            n = rows[key].map(by.size()).fillna(0).to_numpy()
            for task in TASKS:
                rows[f"{name}_{task}"] = _smooth(rows[key].map(by[task].sum()).fillna(0).to_numpy(), n,
                                                 float(before[task].mean()))
        out.append(rows)
    return pd.concat(out)


def item_counters(events: pd.DataFrame, hours: float) -> dict[str, np.ndarray]:
    """Per event (events' index): its video's events and positives per task in ``[t - hours, t)``."""
    out = {name: np.zeros(len(events)) for name in ("n", *TASKS)}
    for _, group in events.groupby("video_id"):
        t = group["time_ms"].to_numpy()
        lo, hi = np.searchsorted(t, t - hours * HOUR_MS, "left"), np.searchsorted(t, t, "left")
        for name in out:
            values = np.ones(len(group)) if name == "n" else group[name].to_numpy()
            cum = np.concatenate([[0.0], np.cumsum(values)])
            out[name][group.index.to_numpy()] = cum[hi] - cum[lo]
    return out


def lr_auc(train: pd.DataFrame, evl: pd.DataFrame, task: str, columns) -> float:
    x = lambda f: np.stack([c(f) for c in columns], axis=1)  # noqa: E731
    model = LogisticRegression(max_iter=1000).fit(x(train), train[task])
    return float(roc_auc_score(evl[task], model.decision_function(x(evl))))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--logs", type=Path, required=True, help="the raw events folder (dt=YYYY-MM-DD/ partitions)")
    p.add_argument("--eval-day", default="2022-04-18")
    p.add_argument("--train-days", type=int, default=10)
    p.add_argument("--hours", type=float, nargs="+", default=[1, 6, 24, 72, 168, 240])
    args = p.parse_args()
    t0 = time.perf_counter()
    events = read_log(args.logs)
    eval_day = pd.Timestamp(args.eval_day)
    frame = day_rates(events, eval_day - pd.Timedelta(days=args.train_days))
    train, evl = frame[frame["day"] < eval_day], frame[frame["day"] == eval_day]
    prior = {t: float(train[t].mean()) for t in TASKS}
    user = lambda t: lambda f: _logit(f[f"user_{t}"].to_numpy())  # noqa: E731
    item = lambda t: lambda f: _logit(f[f"item_{t}"].to_numpy())  # noqa: E731
    rows = {"user + item rate of the days before": {t: lr_auc(train, evl, t, [user(t), item(t)]) for t in TASKS}}
    for hours in args.hours:
        counts = item_counters(events, hours)
        for name, values in counts.items():
            frame[f"c_{name}"] = values[frame.index.to_numpy()]
        train, evl = frame[frame["day"] < eval_day], frame[frame["day"] == eval_day]

        def recent(t):
            return lambda f: _logit(_smooth(f[f"c_{t}"], f["c_n"], prior[t]))

        volume = lambda f: np.log1p(f["c_n"].to_numpy())  # noqa: E731
        rows[f"user + counters {hours:g} h"] = {t: lr_auc(train, evl, t, [user(t), recent(t), volume])
                                                for t in TASKS}
        rows[f"user + item days before + counters {hours:g} h"] = {
            t: lr_auc(train, evl, t, [user(t), item(t), recent(t), volume]) for t in TASKS}
    print(f"{'logistic regression on':<48}" + "".join(f"{t:>18}" for t in TASKS))
    for name, aucs in rows.items():
        print(f"{name:<48}" + "".join(f"{aucs[t]:>18.4f}" for t in TASKS))
    row = {"op": "item_rates_probe", "eval_day": args.eval_day, "train_days": args.train_days,
           "train_events": len(train), "eval_events": len(evl),
           "auc": {k: {t: round(v, 4) for t, v in d.items()} for k, d in rows.items()},
           "seconds": round(time.perf_counter() - t0, 1), "commit": commit(), "date": time.strftime("%Y-%m-%d")}
    out = RESULTS / "quality_item_rates_probe.json"
    previous = json.loads(out.read_text()) if out.exists() else []
    out.write_text(json.dumps(previous + [row], indent=1) + "\n")


if __name__ == "__main__":
    main()
