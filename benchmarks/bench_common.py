"""Shared parts of the kernel benchmark scripts: timing, peak memory and the result rows (not a benchmark)."""

from __future__ import annotations

import datetime
import json
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch
import triton

RESULTS = Path(__file__).resolve().parent / "results"


def commit() -> str:
    """`git rev-parse HEAD`, or "uncommitted" when the repository has no commit (or no git)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "uncommitted"


def time_ms(fn, *, warmup: int = 25, rep: int = 100) -> tuple[float, float, float]:
    """p20, p50, p80 in ms of `fn` by CUDA events (triton.testing.do_bench)."""
    p20, p50, p80 = triton.testing.do_bench(fn, warmup=warmup, rep=rep, quantiles=[0.2, 0.5, 0.8])
    return p20, p50, p80


def peak_mib(fn) -> float:
    """Peak allocated MiB during one call of `fn` (includes tensors alive before the call)."""
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() / 2**20


def row(op: str, backend: str, mode: str, shape: dict[str, Any], times, tflops: float | None,
        peak: float | None, **extra: Any) -> dict[str, Any]:
    """One result row in the house format (benchmarks/ in notes/style.md)."""
    p20, p50, p80 = times if times else (None, None, None)
    return {
        "op": op, "backend": backend, "mode": mode, "shape": shape,
        "p20_ms": p20, "p50_ms": p50, "p80_ms": p80,
        "tflops": tflops, "peak_mib": peak,
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "versions": {"torch": torch.__version__, "triton": triton.__version__, "python": platform.python_version()},
        "commit": commit(), "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        **extra,
    }


def append_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """Append rows to a JSON list file (created when missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    existing = json.loads(path.read_text()) if path.exists() else []
    path.write_text(json.dumps(existing + rows, indent=1) + "\n")


def print_table(rows: list[dict[str, Any]]) -> None:
    """A short fixed-width table of the rows (CLI output)."""
    print(f"{'op':<18}{'backend':<11}{'mode':<9}{'shape':<28}{'p50 ms':>10}{'TFLOP/s':>9}{'GB/s':>8}{'peak MiB':>10}")
    for r in rows:
        shape = ",".join(f"{k}={v}" for k, v in r["shape"].items() if k in ("N", "B", "H", "D", "L", "dtype"))
        p50 = "-" if r["p50_ms"] is None else f"{r['p50_ms']:.3f}"
        tf = "-" if r["tflops"] is None else f"{r['tflops']:.0f}"
        gbs = "-" if r.get("gb_per_s") is None else f"{r['gb_per_s']:.0f}"
        peak = "-" if r["peak_mib"] is None else f"{r['peak_mib']:.0f}"
        print(f"{r['op']:<18}{r['backend']:<11}{r['mode']:<9}{shape[:27]:<28}{p50:>10}{tf:>9}{gbs:>8}{peak:>10}"
              f" {r.get('note', '')}")
