"""Model quality against data size: generate, build samples with Spark, train the small CPU config, and record
the per-task AUC beside the oracle, the window-start oracle and the baselines.

For each ``--users`` value: ``--days`` days of generated logs, samples for the last four windows, a model
trained on the three before the last and evaluated on the last (as the demo's second run). Appends one row
per size to ``benchmarks/results/quality.json`` and prints it.

    .venv/bin/python benchmarks/bench_quality_scale.py --users 3000 12000
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from components.config import load_config  # noqa: E402
from components.data.samples import build_samples  # noqa: E402
from components.datagen import generate_dataset  # noqa: E402
from components.training.train import train  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "quality.json"
START = date(2022, 4, 8)


def _commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                         check=False)
    return out.stdout.strip() or "unknown"


def _one(users: int, days: int, work: Path, config_path: Path) -> dict:
    shutil.rmtree(work, ignore_errors=True)
    t0 = time.perf_counter()
    gen = generate_dataset(out=work / "raw", users=users, days=days, start_date=START)
    base = load_config(config_path)
    config = base.replace(data=dataclasses.replace(base.data, work_dir=str(work)),
                          tracking=dataclasses.replace(base.tracking, tracking_uri=f"sqlite:///{work}/mlflow.db"))
    eval_day = START + timedelta(days=days - 1)
    train_days = [eval_day - timedelta(days=i) for i in (3, 2, 1)]
    build_samples(config=config, window_starts=[*train_days, eval_day])
    result = train(config=config, eval_window=eval_day, train_windows=train_days, register=False)
    auc = {k.split("/")[1]: round(v, 4) for k, v in result.metrics.items()
           if k.startswith("eval/is_") and k.endswith("/auc")}
    return {"op": "model_quality", "users": users, "days": days, "events": gen.events,
            "eval_window": eval_day.isoformat(), "config": str(config_path.relative_to(REPO)),
            "steps": result.steps, "auc": auc,
            "references": {k: {t: round(v, 4) for t, v in d.items()} for k, d in result.references.items()},
            "seconds": round(time.perf_counter() - t0, 1), "cores": os.cpu_count(),
            "python": platform.python_version(), "commit": _commit(), "date": time.strftime("%Y-%m-%d")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, nargs="+", default=[3000, 12000])
    parser.add_argument("--days", type=int, default=8)
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "small_cpu.config")
    parser.add_argument("--work", type=Path, default=Path("/tmp/hstu_bench_quality"))
    args = parser.parse_args()
    rows = []
    for users in args.users:
        rows.append(_one(users, args.days, args.work / f"u{users}", args.config.resolve()))
        print(json.dumps(rows[-1]), flush=True)
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    RESULTS.write_text(json.dumps(previous + rows, indent=1) + "\n")
    shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()
