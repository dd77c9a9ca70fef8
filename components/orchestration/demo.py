"""``make demo``: the whole pipeline end to end on the embedded default.

Generates a small KuaiRand-shaped dataset (once), then runs the ``hstu_daily`` DAG with ``airflow dags test``
for two consecutive days, so the second run faces the champion the first one promoted. Local Spark, SQLite
MLflow and Airflow under ``hstu_work/``, the CPU with PyTorch kernels when there is no GPU. Ends with the
per-task AUC table, the gate decision and where to look.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

from components.config import load_config
from components.orchestration.localstack import REPO, airflow_env, stack_dir

CONFIG = REPO / "configs" / "demo.config"
START = date(2022, 4, 8)


def _ensure_data(work_dir: Path, users: int, days: int) -> Path:
    from components.datagen import generate_dataset

    raw = work_dir / "raw"
    if (raw / "events").is_dir():
        print(f"data: reusing {raw}")
        return raw
    result = generate_dataset(out=raw, users=users, days=days, start_date=START, seed=0)
    print(f"data: generated {result.events:,} events of {result.users:,} users over {result.days} days -> {raw}")
    return raw


def _run_dag(env: dict[str, str], work_dir: Path, window: date) -> bool:
    """One DAG run whose data interval starts on ``window`` (the cron fires at 03:00 the next day)."""
    logical = f"{window + timedelta(days=1)}T03:00:00+00:00"
    log = stack_dir(work_dir) / f"dags_test_{window}.log"
    params = json.dumps({"config_file": str(CONFIG), "work_dir": str(work_dir)})
    print(f"airflow dags test hstu_daily {logical} --conf '{params}'  (window {window}; log {log})", flush=True)
    t0 = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.run([sys.executable, "-m", "airflow", "dags", "test", "hstu_daily", logical,
                               "--conf", params], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
    print(f"  -> {'success' if proc.returncode == 0 else 'FAILED'} in {time.monotonic() - t0:.0f} s")
    return proc.returncode == 0


_SHORT = {"oracle_window_start": "oracle@start", "baseline_history_rate": "hist_rate",
          "baseline_history_popularity": "hist+pop", "baseline_best": "best_base"}


def _columns(refs: dict[str, dict[str, float]]) -> list[tuple[str, str]]:
    """(reference, header) in table order: oracles, each baseline, the best baseline, anything else."""
    def rank(key: str) -> int:
        if key.startswith("oracle"):
            return 0
        if key.startswith("baseline_"):
            return 2 if key == "baseline_best" else 1
        return 3

    keys = sorted(refs, key=rank)  # stable: keeps the evaluator's order within a group
    return [(k, _SHORT.get(k, k.removeprefix("baseline_"))) for k in keys]


def _summary(work_dir: Path, windows: list[date]) -> None:
    for window in windows:
        result = work_dir / "runs" / window.isoformat() / "result.json"
        if not result.exists():
            continue
        r = json.loads(result.read_text())
        print(f"\nwindow {window}: version {r.get('registered_version')}, {r['steps']} steps, "
              f"final loss {r['final_loss']:.4f}")
        refs, metrics = r.get("references", {}), r["metrics"]
        columns = [(k, h, max(len(h), 6)) for k, h in _columns(refs)]
        print(f"  {'task':<10} {'model AUC':>9} {'gAUC':>6} " + " ".join(f"{h:>{w}}" for _, h, w in columns))
        for task in sorted({k.split("/")[1] for k in metrics if k.startswith("eval/") and k.endswith("/auc")}
                           - set(refs)):
            ref = " ".join(f"{refs[k].get(task, float('nan')):>{w}.4f}" for k, _, w in columns)
            print(f"  {task:<10} {metrics[f'eval/{task}/auc']:>9.4f} "
                  f"{metrics.get(f'eval/{task}/grouped_auc', float('nan')):>6.4f} {ref}")
    reports = sorted((work_dir / "reports").glob("*.md")) if (work_dir / "reports").exists() else []
    for report in reports[-2:]:
        print("\n" + report.read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", type=Path, default=REPO / "hstu_work")
    # 12,000 users: the model's margin over the best baseline grows with data (benchmarks/results/QUALITY_NOTES.md
    # §14), and since the CPU attention pads by length group the demo still runs in ~7.5 min on 2 cores.
    parser.add_argument("--users", type=int, default=12000)
    parser.add_argument("--days", type=int, default=8)
    args = parser.parse_args(argv)
    work_dir = args.work_dir.resolve()
    cfg = load_config(CONFIG)
    print(f"config {CONFIG.relative_to(REPO)}: kernel {cfg.model.kernel}, {len(cfg.model.tasks)} tasks, "
          f"{cfg.data.train_windows} training windows")
    _ensure_data(work_dir, args.users, args.days)
    env = airflow_env(work_dir)
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True,
                   stdout=subprocess.DEVNULL, cwd=REPO)
    last = START + timedelta(days=args.days - 1)
    windows = [last - timedelta(days=1), last]
    ok = all([_run_dag(env, work_dir, w) for w in windows])
    _summary(work_dir, windows)
    print(f"\nMLflow:  {env['MLFLOW_TRACKING_URI']}  (browse it: make up, then http://127.0.0.1:5000)")
    print(f"Samples: {work_dir / 'samples'}   Stats: {work_dir / 'stats'}   Runs: {work_dir / 'runs'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
