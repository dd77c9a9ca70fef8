"""The ``hstu`` command: one subcommand per pipeline step.

Each subcommand parses its arguments, loads the config, calls one component entry function and prints a
one-line summary (JSON with ``--json``). User errors exit with status 2 and one line on stderr, no traceback:
bad arguments (a date that is not YYYY-MM-DD) as argparse finds them, and bad input (a missing or invalid
config file, an unknown version) as the entry functions raise it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

from components.data.windows import add_window_arguments
from hstu_model.config_text import ConfigError

USER_ERRORS = (ConfigError, ValueError, FileNotFoundError, PermissionError)
# Errors of the registry side, matched by name so that `hstu config ...` never imports mlflow.
REGISTRY_ERRORS = ("TrackingUnavailableError", "MlflowException", "StaleChampionError")


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

    text = load_config(args.file).text
    if args.json:
        _emit(args, "", {"file": str(args.file), "text": text})
    else:
        print(text, end="")
    return 0


# --- data -----------------------------------------------------------------------------------------------


def _data_generate(args: argparse.Namespace) -> int:
    from components.datagen import generate_dataset

    result = generate_dataset(out=args.out, users=args.users, days=args.days, start_date=args.start_date,
                              seed=args.seed, fmt=args.format, overwrite=args.overwrite)
    _emit(args, f"generated {result.events:,} events, {result.users:,} users, {result.days} days "
                f"from {result.start_date} into {result.out} ({result.seconds:.1f} s)", result)
    return 0


def _data_oracle(args: argparse.Namespace) -> int:
    from components.datagen import baseline_auc, oracle_aucs

    end = args.window_start + timedelta(days=args.window_days)
    report = oracle_aucs(data=args.data, window_start=args.window_start, window_end=end)
    if args.train_days:
        report.update(baseline_auc(data=args.data, train_start=args.window_start - timedelta(days=args.train_days),
                                   train_end=args.window_start, eval_start=args.window_start, eval_end=end))
    if args.json:
        print(json.dumps(report, sort_keys=True))
        return 0
    print(f"{'task':<16}" + "".join(f"{name:>12}" for name in report))
    for task in report["oracle"]:
        print(f"{task:<16}" + "".join(f"{report[name].get(task, float('nan')):>12.4f}" for name in report))
    return 0


# --- samples --------------------------------------------------------------------------------------------


def _samples_build(args: argparse.Namespace) -> int:
    from components.data.samples import run, summary

    results = run(args)
    if args.json:
        print(json.dumps([r.to_dict() for r in results], sort_keys=True))
    else:
        print("\n".join(summary(r) for r in results))
    return 0


# --- model ----------------------------------------------------------------------------------------------


def _model_summary(args: argparse.Namespace) -> int:
    from components.config import load_config

    config = load_config(args.config)  # before the model's imports (torch): a bad file fails fast
    from hstu_model import summarize_model

    table = summarize_model(config.model)
    _emit(args, table, {"config": str(args.config), "table": table})
    return 0


# --- baselines ------------------------------------------------------------------------------------------


def _baselines(args: argparse.Namespace) -> int:
    from components.config import load_config

    config = load_config(args.config)  # a bad file fails before the heavy imports below
    from components.baselines.suite import format_table, run_baselines
    from components.data.windows import select_training_windows, training_windows

    days = config.data.window_days
    given = training_windows(args.window, count=args.train_windows, window_days=days) if args.train_windows else None
    windows = select_training_windows(Path(config.data.work_dir) / "samples", args.window,
                                      count=config.data.train_windows, window_days=days, given=given)
    result = run_baselines(config=config, eval_window=args.window, train_windows=windows)
    _emit(args, f"baselines on window {result.eval_window}, trained on {len(result.train_windows)} windows "
                f"{result.train_windows[0]}..{result.train_windows[-1]}: {result.train_candidates:,} training, "
                f"{result.eval_candidates:,} eval candidates ({'cached' if result.cached else f'{result.seconds:.1f} s'})"
                f"\n{format_table(result)}", result)
    return 0


# --- tuning ---------------------------------------------------------------------------------------------


def _tune(args: argparse.Namespace) -> int:
    from components.config import load_config

    config = load_config(args.config)  # a bad file fails before the heavy imports below
    from components.data.windows import training_windows
    from components.training.tune import tune

    windows = None
    if args.train_windows:
        windows = training_windows(args.window, count=args.train_windows, window_days=config.data.window_days)
    result = tune(config=config, window=args.window, trials=args.trials, out=args.out, seed=args.seed,
                  train_windows=windows)
    done = sum(t.value is not None for t in result.trials)
    _emit(args, f"window {result.window}: best mean AUC {result.best_value:.4f} (trial {result.best_trial}, "
                f"{done}/{len(result.trials)} trials completed) {result.best_params}; config {result.config_path}; "
                f"MLflow run {result.parent_run_id} ({result.seconds:.0f} s)", result)
    return 0


# --- registry -------------------------------------------------------------------------------------------


def _gate(args: argparse.Namespace) -> int:
    from components.config import load_config

    config = load_config(args.config)  # a bad file fails before the heavy imports below
    from components.orchestration.daily import score_version
    from components.registry.gate import run_gate

    result = run_gate(config=config, challenger_version=args.version, window=args.window.isoformat(),
                      evaluate=lambda uri: score_version(config, args.window, uri.rsplit("/", 1)[-1]),
                      dry_run=args.dry_run, force=args.force)
    outcome = "dry run, no alias moved" if args.dry_run else (
        "promoted to @champion" if result.promoted else "@champion unchanged")
    _emit(args, f"{result.markdown}\n{result.model_name} version {result.version}: {outcome}", result)
    return 0


def _promote(args: argparse.Namespace) -> int:
    from components.config import load_config
    from components.registry.aliases import promote

    change = promote(config=load_config(args.config), version=args.version, force=args.force,
                     actor=args.actor, reason=args.reason)
    _emit(args, f"{change.model_name}: @champion {change.before.champion} -> {change.after.champion}"
                f"{' (forced)' if change.forced else ''}; @previous_champion {change.after.previous_champion}",
          change)
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from components.config import load_config
    from components.registry.aliases import rollback

    change = rollback(config=load_config(args.config), to_version=args.to, actor=args.actor, reason=args.reason)
    _emit(args, f"{change.model_name}: @champion rolled back {change.before.champion} -> {change.after.champion}",
          change)
    return 0


# --- parser ---------------------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (status 2), like every other user error."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add(sub, name: str, handler: Callable[[argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=help_text, description=help_text)
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    parser.set_defaults(handler=handler, command=parser.prog)
    return parser


def _group(steps, name: str, help_text: str):
    """A step with actions of its own (``hstu config validate``): its sub-parsers."""
    group = steps.add_parser(name, help=help_text, description=help_text)
    return group.add_subparsers(dest="action", required=True, metavar="ACTION")


def _add_config_commands(steps) -> None:
    config = _group(steps, "config", "validate or show a pipeline config")
    p = _add(config, "validate", _config_validate, "check a config file; errors name the field and line")
    p.add_argument("file", type=Path)
    p = _add(config, "show", _config_show, "print the resolved config with every default filled in")
    p.add_argument("file", type=Path)


def _add_data_commands(steps) -> None:
    data = _group(steps, "data", "the built-in KuaiRand-shaped data generator")
    p = _add(data, "generate", _data_generate, "generate raw logs, user features and true action probabilities")
    p.add_argument("--out", type=Path, required=True, help="output folder (events/, user_features/, truth/)")
    p.add_argument("--users", type=int, default=3000)
    p.add_argument("--days", type=int, default=8)
    p.add_argument("--start-date", type=_date, default=date(2022, 4, 8))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--format", choices=("csv", "parquet"), default="csv")
    p.add_argument("--overwrite", action="store_true", help="replace data already in --out")
    p = _add(data, "oracle", _data_oracle, "oracle AUC per task on a window (and baselines with --train-days)")
    p.add_argument("--data", type=Path, required=True, help="folder written by `hstu data generate`")
    p.add_argument("--window-start", type=_date, required=True)
    p.add_argument("--window-days", type=int, default=1)
    p.add_argument("--train-days", type=int, default=0, help="fit the baselines on this many days before")


def _add_samples_and_model_commands(steps) -> None:
    samples = _group(steps, "samples", "the Spark sample builder")
    p = _add(samples, "build", _samples_build, "raw events -> user-window samples for one or more windows")
    add_window_arguments(p)
    model = _group(steps, "model", "inspect the model a config builds")
    p = _add(model, "summary", _model_summary, "parameter count per module and in total")
    p.add_argument("config", type=Path)


def _add_training_commands(steps) -> None:
    p = _add(steps, "tune", _tune, "search training hyper-parameters on a window; write the best config")
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--window", type=_date, required=True, help="validation window YYYY-MM-DD (trains on those before)")
    p.add_argument("--trials", type=int, required=True, help="number of training runs")
    p.add_argument("--out", type=Path, default=None, help="best config file (default {work_dir}/tune/<window>/best.config)")
    p.add_argument("--seed", type=int, default=0, help="seed of the TPE sampler")
    p.add_argument("--train-windows", type=int, default=None, help="number of windows before --window")
    p = _add(steps, "baselines", _baselines, "AUC per task of the baseline suite on a window's samples")
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--window", type=_date, required=True, help="evaluation window YYYY-MM-DD")
    p.add_argument("--train-windows", type=int, default=None,
                   help="number of windows before --window (default: data_config.train_windows, those that exist)")


def _add_registry_commands(steps) -> None:
    p = _add(steps, "gate", _gate, "score a version and @champion on a window, decide, record, promote if it passes")
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--version", required=True, help="the registered version to judge")
    p.add_argument("--window", type=_date, required=True, help="evaluation window YYYY-MM-DD")
    p.add_argument("--dry-run", action="store_true", help="decide and record, move no alias")
    p.add_argument("--force", action="store_true", help="promote even if the gate fails (recorded as forced)")
    p = _add(steps, "promote", _promote, "move @champion to a version that passed the gate (or --force)")
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--version", required=True)
    p.add_argument("--force", action="store_true", help="promote without a passing gate decision (recorded)")
    p.add_argument("--actor", default=None, help="who promotes (default: the OS user)")
    p.add_argument("--reason", default="", help="why; required in spirit when forcing")
    p = _add(steps, "rollback", _rollback, "move @champion back to @previous_champion (or --to VERSION)")
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--to", default=None, help="version to restore (default: @previous_champion)")
    p.add_argument("--actor", default=None)
    p.add_argument("--reason", default="")


def build_parser() -> argparse.ArgumentParser:
    """The ``hstu`` parser: every leaf subcommand has a one-line summary, ``--json`` and a ``handler``."""
    parser = _Parser(prog="hstu", description="DlrmHSTU daily training pipeline")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    steps = parser.add_subparsers(dest="step", required=True, metavar="STEP")
    for add_commands in (_add_config_commands, _add_data_commands, _add_samples_and_model_commands,
                         _add_training_commands, _add_registry_commands):
        add_commands(steps)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Our packages log at INFO; libraries (fbgemm, py4j, mlflow) only warnings, unless --verbose.
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for package in ("components", "hstu_model", "kernels"):
        logging.getLogger(package).setLevel(logging.DEBUG if args.verbose else logging.INFO)
    try:
        return args.handler(args)
    except Exception as exc:
        if not isinstance(exc, USER_ERRORS) and type(exc).__name__ not in REGISTRY_ERRORS:
            raise
        message = " ".join(str(exc).split())  # one line, whatever the exception's text holds
        print(f"{args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
