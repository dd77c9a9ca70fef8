"""Regenerates the config's Python code (``*_pb2.py``/``*_pb2.pyi``) from the ``.proto`` files.

Run ``make proto`` after editing a ``.proto``; a test fails when the committed code is stale.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PROTO_FILES = ("hstu_model/proto/model.proto", "components/proto/pipeline.proto")


def generate(out_dir: Path) -> list[Path]:
    """Writes the generated modules under ``out_dir`` (mirroring the proto paths) and returns them."""
    from grpc_tools import protoc

    out_dir.mkdir(parents=True, exist_ok=True)
    args = ["protoc", f"-I{REPO_ROOT}", f"--python_out={out_dir}", f"--pyi_out={out_dir}", *PROTO_FILES]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed on {PROTO_FILES}")
    return sorted(p for f in PROTO_FILES for p in (out_dir / Path(f).parent).glob(Path(f).stem + "_pb2.py*"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT, help="output root (default: the repo)")
    args = parser.parse_args(argv)
    for path in generate(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
