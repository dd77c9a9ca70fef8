"""Model quality on real KuaiRand logs, beside the baseline suite, on a fixed time split.

Builds samples with Spark from a KuaiRand ``log_standard`` log in the pipeline's raw layout
(``LOGS/dt=YYYY-MM-DD/*.csv`` plus the user features table), trains ``configs/kuairand_explicit.config`` on the
``train_windows`` days before the evaluation day and evaluates on that day: per task the model's AUC and every
baseline's (``components.baselines.suite``) on the same samples. The public split trains on the windows up to
2022-04-17 and evaluates on 2022-04-18 (the explicit-feedback subset of KuaiRand-27K; the data is not part of
this repository: KuaiRand is published at https://kuairand.com, CC BY-SA 4.0).

    .venv/bin/python benchmarks/bench_quality_real.py --logs PATH/logs --user-features PATH/user_features.csv

``--users-mod M --users-keep R [R ...]`` keeps only the users with ``user_id % M`` in the R given (events and user
features alike, copied into the work folder first): the same split on fewer users, for a learning curve over users.

Appends one row to ``benchmarks/results/quality_real.json`` and prints the table.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import platform
import shutil
import sys
import time
from datetime import date, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_common import RESULTS, commit  # noqa: E402

from components.config import apply_overrides, load_config  # noqa: E402
from components.data.samples import build_samples  # noqa: E402
from components.training.train import train  # noqa: E402


def _keep_users(logs: Path, user_features: Path, out: Path, users: dict) -> tuple[Path, Path]:
    """Copies of the raw CSVs with only the rows whose user_id % users["mod"] is in users["keep"]."""
    def copy(src: Path, dst: Path) -> None:
        lines = src.read_text().splitlines(keepends=True)
        column = next(csv.reader(lines[:1])).index("user_id")
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_text(lines[0] + "".join(line for line in lines[1:]
                                          if int(next(csv.reader([line]))[column]) % users["mod"] in users["keep"]))

    for part in sorted(logs.glob("dt=*/*.csv")):
        copy(part, out / "logs" / part.parent.name / part.name)
    copy(user_features, out / user_features.name)
    return out / "logs", out / user_features.name


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--logs", type=Path, required=True, help="the raw events folder (dt=YYYY-MM-DD/ partitions)")
    p.add_argument("--user-features", type=Path, required=True, help="the user features CSV")
    p.add_argument("--config", type=Path, default=REPO / "configs" / "kuairand_explicit.config")
    p.add_argument("--eval-window", type=date.fromisoformat, default=date(2022, 4, 18))
    p.add_argument("--work", type=Path, default=Path("/tmp/hstu_bench_quality_real"))
    p.add_argument("--keep", action="store_true", help="keep the work folder (samples, runs)")
    p.add_argument("--seed", type=int, help="train_config.seed (default: the config's)")
    p.add_argument("--users-mod", type=int, help="with --users-keep: keep the users with user_id %% M in R")
    p.add_argument("--users-keep", type=int, nargs="+", help="the residues R of user_id %% M to keep")
    p.add_argument("--results", type=Path, default=RESULTS / "quality_real.json",
                   help="the JSON list the row is appended to (experiments: a file of their own)")
    args = p.parse_args()
    if (args.users_mod is None) != (args.users_keep is None):
        p.error("--users-mod and --users-keep go together")
    t0 = time.perf_counter()
    shutil.rmtree(args.work, ignore_errors=True)
    users = None
    if args.users_mod:
        users = {"mod": args.users_mod, "keep": sorted(args.users_keep)}
        args.logs, args.user_features = _keep_users(args.logs, args.user_features, args.work / "user_subset", users)
    base = apply_overrides(load_config(args.config), work_dir=str(args.work.resolve()),
                           events_path=str(args.logs.resolve()), user_features_path=str(args.user_features.resolve()))
    config = base.replace(tracking=dataclasses.replace(base.tracking, tracking_uri=f"sqlite:///{args.work.resolve()}/mlflow.db",
                                                       log_system_metrics=False))
    if args.seed is not None:
        config = config.replace(train=dataclasses.replace(config.train, seed=args.seed))
    train_windows = [args.eval_window - timedelta(days=i) for i in range(config.data.train_windows, 0, -1)]
    build_samples(config=config, window_starts=[*train_windows, args.eval_window])
    result = train(config=config, eval_window=args.eval_window, train_windows=train_windows, register=False)
    tasks = [t.task_name for t in config.model.tasks]
    model = {t: round(result.metrics[f"eval/{t}/auc"], 4) for t in tasks}
    refs = {k: {t: round(v, 4) for t, v in d.items()} for k, d in result.references.items()}
    row = {"op": "model_quality_real", "config": str(args.config.relative_to(REPO)) if args.config.is_relative_to(REPO)
           else str(args.config), "eval_window": args.eval_window.isoformat(),
           "train_windows": [w.isoformat() for w in train_windows], "seed": config.train.seed,
           "item_counter_days": config.data.item_counter_days, "users": users, "steps": result.steps, "auc": model,
           "references": refs, "seconds": round(time.perf_counter() - t0, 1), "cores": os.cpu_count(),
           "python": platform.python_version(), "commit": commit(), "date": time.strftime("%Y-%m-%d")}
    print(f"{'task':<18}{'model':>8}" + "".join(f"{k.removeprefix('baseline_'):>20}" for k in refs))
    for t in tasks:
        print(f"{t:<18}{model[t]:>8.4f}" + "".join(f"{refs[k].get(t, float('nan')):>20.4f}" for k in refs))
    out = args.results
    previous = json.loads(out.read_text()) if out.exists() else []
    out.write_text(json.dumps(previous + [row], indent=1) + "\n")
    if not args.keep:
        shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()
