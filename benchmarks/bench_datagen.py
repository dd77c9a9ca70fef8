"""Benchmark the built-in data generator: events/s and peak RSS at given event counts.

Each size runs in a fresh subprocess (so peak RSS is that run's own), generates into a temporary folder,
and appends one row per (size, format) to benchmarks/results/datagen.json; a short table is printed.

    python benchmarks/bench_datagen.py --events 1000000 10000000 --formats csv parquet
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "datagen.json"
EVENTS_PER_USER_DAY = 9.1  # measured on the default SignalConfig; only used to size the runs
DAYS = 20


def _one(users: int, days: int, fmt: str) -> dict:
    """Run one generation in this process; returns its measurements."""
    sys.path.insert(0, str(ROOT))
    from components.datagen import generate_dataset

    with tempfile.TemporaryDirectory(prefix="bench_datagen_") as tmp:
        t0 = time.perf_counter()
        res = generate_dataset(out=Path(tmp) / "data", users=users, days=days, seed=0, fmt=fmt)
        seconds = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file())
    return {"events": res.events, "seconds": round(seconds, 3), "events_per_s": round(res.events / seconds),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "bytes_written": size, "label_rates": {k: round(v, 5) for k, v in res.label_rates.items()}}


def _versions() -> dict:
    import numpy
    import pandas
    import pyarrow

    return {"python": platform.python_version(), "numpy": numpy.__version__, "pyarrow": pyarrow.__version__,
            "pandas": pandas.__version__}


def _commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        return out.stdout.strip() or "uncommitted"
    except OSError:
        return "unknown"


def _machine() -> dict:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cores": cores, "cpu": platform.processor() or platform.machine(), "system": platform.platform(),
            "load_avg_1m": round(os.getloadavg()[0], 2)}  # the machine is shared: a high load slows the run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, nargs="+", default=[1_000_000, 10_000_000],
                        help="target event counts (users = events / (days * ~9.1))")
    parser.add_argument("--days", type=int, default=DAYS)
    parser.add_argument("--formats", nargs="+", default=["csv"], choices=["csv", "parquet"])
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--one", nargs=3, metavar=("USERS", "DAYS", "FMT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(_one(int(args.one[0]), int(args.one[1]), args.one[2])))
        return
    rows = []
    for target in args.events:
        users = max(1, round(target / (args.days * EVENTS_PER_USER_DAY)))
        for fmt in args.formats:
            cmd = [sys.executable, __file__, "--one", str(users), str(args.days), fmt]
            measured = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
            rows.append({"op": "generate_dataset", "format": fmt, "target_events": target, "users": users,
                         "days": args.days, **measured, "versions": _versions(), "machine": _machine(),
                         "commit": _commit(), "date": datetime.now(UTC).isoformat(timespec="seconds")})
            r = rows[-1]
            print(f"{fmt:8s} {r['events']:>11,d} events  {r['seconds']:7.2f} s  {r['events_per_s']:>10,d} ev/s  "
                  f"peak RSS {r['peak_rss_mib']:7.1f} MiB  {r['bytes_written'] / 2**20:8.1f} MiB written")
    old = json.loads(args.results.read_text()) if args.results.exists() else []
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(old + rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
