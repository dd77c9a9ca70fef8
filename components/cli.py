"""The ``hstu`` command: one subcommand per pipeline step.

Each subcommand parses its arguments, loads the config, calls one component entry function and prints a
one-line summary (JSON with ``--json``). User errors exit with status 2 and a message, no traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path

from hstu_model.config_text import ConfigError

USER_ERRORS = (ConfigError, ValueError, FileNotFoundError, PermissionError)


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {text!r}") from None


def _emit(args: argparse.Namespace, summary: str, payload: object) -> None:
    if getattr(args, "json", False):
        if dataclasses.is_dataclass(payload):
            payload = dataclasses.asdict(payload)
        print(json.dumps(payload, default=str, sort_keys=True))
    else:
        print(summary)


# --- config ---------------------------------------------------------------------------------------------


def _config_validate(args: argparse.Namespace) -> int:
    from components.config import load_config

    cfg = load_config(args.file)
    tasks = ", ".join(t.task_name for t in cfg.model.tasks)
    _emit(args, f"{args.file}: valid (kernel {cfg.model.kernel}, max_seq_len {cfg.model.max_seq_len}, tasks {tasks})",
          {"file": str(args.file), "valid": True})
    return 0


def _config_show(args: argparse.Namespace) -> int:
    from components.config import load_config

    print(load_config(args.file).text, end="")
    return 0


# --- parser ---------------------------------------------------------------------------------------------


def _add(sub, name: str, handler: Callable[[argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=help_text, description=help_text)
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    parser.set_defaults(handler=handler)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hstu", description="DlrmHSTU daily training pipeline")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    steps = parser.add_subparsers(dest="step", required=True, metavar="STEP")

    config = steps.add_parser("config", help="validate or show a pipeline config").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    p = _add(config, "validate", _config_validate, "check a config file; errors name the field and line")
    p.add_argument("file", type=Path)
    p = _add(config, "show", _config_show, "print the resolved config with every default filled in")
    p.add_argument("file", type=Path)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.handler(args)
    except USER_ERRORS as exc:
        print(f"hstu {args.step}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
