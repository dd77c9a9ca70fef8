"""``make demo``: the whole pipeline end to end on the embedded default.

Runs what exists of the pipeline and says plainly what is not built yet.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from components.config import load_config

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "configs" / "small_cpu.config"


def main() -> int:
    cfg = load_config(CONFIG)
    print(f"config {CONFIG.relative_to(REPO)}: valid (kernel {cfg.model.kernel}, "
          f"{len(cfg.model.tasks)} tasks, max_seq_len {cfg.model.max_seq_len})")
    missing = [name for name in ("components.datagen", "components.samples", "components.train", "dags")
               if importlib.util.find_spec(name) is None]
    if missing:
        print("not built yet: " + ", ".join(missing))
    return 0


if __name__ == "__main__":
    sys.exit(main())
