"""Benchmark of parsing `dags/hstu_daily.py`: the time Airflow's DagBag reports for the file, and the whole
cold import (Python start excluded, Airflow's own import included), each in a fresh process.

Appends one row to `benchmarks/results/dag_parse.json` and prints it. Target (issue 8): parse under 2 s.

    .venv/bin/python benchmarks/bench_dag_parse.py --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "dag_parse.json"

_PROBE = """
import json, sys, time
t0 = time.perf_counter()
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
total = time.perf_counter() - t0
stat = bag.dagbag_stats[0]  # one file given: one stat
print(json.dumps({"file_s": stat.duration.total_seconds(), "total_s": total, "errors": len(bag.import_errors),
                  "tasks": stat.task_num}))
"""


def _once(airflow_home: str) -> dict:
    env = {**os.environ, "AIRFLOW_HOME": airflow_home, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    out = subprocess.run([sys.executable, "-c", _PROBE, str(REPO / "dags" / "hstu_daily.py")], env=env,
                         capture_output=True, text=True, check=True, timeout=300)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        runs = [_once(home) for _ in range(args.repeats)]
    if any(r["errors"] for r in runs):
        raise SystemExit(f"the DAG file has import errors: {runs}")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                            text=True, check=False).stdout.strip()
    row = {
        "op": "dag_parse", "file": "dags/hstu_daily.py", "repeats": args.repeats, "tasks": runs[0]["tasks"],
        "file_s_median": round(statistics.median(r["file_s"] for r in runs), 3),
        "file_s_max": round(max(r["file_s"] for r in runs), 3),
        "cold_import_s_median": round(statistics.median(r["total_s"] for r in runs), 3),
        "cores": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(), "commit": commit, "date": time.strftime("%Y-%m-%d"),
    }
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    RESULTS.write_text(json.dumps(previous + [row], indent=1) + "\n")
    print(json.dumps(row))


if __name__ == "__main__":
    main()
