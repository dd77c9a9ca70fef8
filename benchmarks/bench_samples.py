"""Benchmark of the Spark sample builder: events/s for a cold start and an incremental day, peak memory.

Generates ``--days`` days of KuaiRand-shaped logs with ``--events-per-day`` events (components.datagen), then
builds the window of day ``days - 1`` with no history state (cold start: history from every earlier raw day)
and the window of the last day from the state the first build saved (incremental). Appends one row per phase
to ``benchmarks/results/samples.json`` and prints a short table.

    .venv/bin/python benchmarks/bench_samples.py --events-per-day 1000000 --days 3
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
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
from components.data.spark import get_spark  # noqa: E402
from components.datagen import generate_dataset  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "samples.json"
EVENTS_PER_USER_DAY = 9.45  # measured on the generator's defaults
START = date(2022, 4, 8)


def _jvm_peak_mib() -> float:
    """Peak resident memory (VmHWM) of the Java processes started by this Python process."""
    peak = 0.0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        if fields.get("Name", "").strip() == "java" and int(fields.get("PPid", "0")) == os.getpid():
            peak = max(peak, int(fields.get("VmHWM", "0 kB").split()[0]) / 1024)
    return round(peak, 1)


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, check=False).stdout.strip() or "uncommitted"
    except OSError:
        return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events-per-day", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=3, help=">= 2: cold start on day days-1, incremental on the last")
    parser.add_argument("--fmt", choices=("csv", "parquet"), default="csv")
    parser.add_argument("--work", type=Path, default=Path("/tmp/hstu_bench_samples"))
    parser.add_argument("--driver-memory", default="6g")
    parser.add_argument("--keep", action="store_true", help="keep the generated data and outputs")
    args = parser.parse_args()
    users = max(1, round(args.events_per_day / EVENTS_PER_USER_DAY))
    shutil.rmtree(args.work, ignore_errors=True)
    t0 = time.perf_counter()
    gen = generate_dataset(out=args.work / "raw", users=users, days=args.days, start_date=START, fmt=args.fmt,
                           overwrite=True)
    gen_s = time.perf_counter() - t0
    per_day = json.loads((args.work / "raw" / "_datagen.json").read_text())["events_per_day"]
    base = load_config(REPO / "configs" / "small_cpu.config")
    config = base.replace(data=dataclasses.replace(base.data, work_dir=str(args.work), events_format=args.fmt,
                                                   max_bad_row_fraction=0.05))
    spark = get_spark(master="local[*]", driver_memory=args.driver_memory, ui=False, shuffle_partitions=8)
    cold_day, last_day = START + timedelta(days=args.days - 2), START + timedelta(days=args.days - 1)
    rows = []
    for phase, day in (("cold_start", cold_day), ("incremental", last_day)):
        t = time.perf_counter()
        result = build_samples(config=config, window_starts=[day], spark=spark)[0]
        seconds = time.perf_counter() - t
        read = sum(n for d, n in per_day.items() if date.fromisoformat(d) <= day) if phase == "cold_start" \
            else per_day[day.isoformat()]
        rows.append({
            "op": "build_samples", "phase": phase, "fmt": args.fmt, "events_per_day": per_day[day.isoformat()],
            "events_read": read, "users": users, "seconds": round(seconds, 2),
            "events_per_s": round(read / seconds), "samples": result.samples, "candidates": result.candidates,
            "history_source": result.history_source,
            "python_peak_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "jvm_peak_mib": _jvm_peak_mib(), "driver_memory": args.driver_memory,
            "cores": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2), "spark": spark.version,
            "python": platform.python_version(), "commit": _commit(), "date": time.strftime("%Y-%m-%d"),
            "generate_s": round(gen_s, 1), "generated_events": gen.events,
        })
        print(f"{phase:12s} {day}  {read:>10,d} events  {seconds:7.1f} s  {read / seconds:>9,.0f} ev/s  "
              f"samples {result.samples:,}  jvm peak {rows[-1]['jvm_peak_mib']:,.0f} MiB")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    RESULTS.write_text(json.dumps(previous + rows, indent=1) + "\n")
    if not args.keep:
        shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()
