"""The `hstu` command: summaries on success, one-line errors (exit 2, no traceback) on user mistakes."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from components.orchestration.cli import build_parser, main

SMALL = Path(__file__).resolve().parents[2] / "configs" / "small_cpu.config"


def test_config_validate_prints_summary(capsys):
    assert main(["config", "validate", str(SMALL)]) == 0
    assert "valid (kernel PYTORCH, max_seq_len 320" in capsys.readouterr().out


def test_config_validate_json(capsys):
    assert main(["config", "validate", "--json", str(SMALL)]) == 0
    assert json.loads(capsys.readouterr().out) == {"file": str(SMALL), "valid": True}


def test_config_show_prints_defaults(capsys):
    assert main(["config", "show", str(SMALL)]) == 0
    out = capsys.readouterr().out
    assert "max_bad_row_fraction: 0.05" in out and "registered_model_name: \"dlrm_hstu\"" in out


def test_bad_config_exits_2_with_field_and_line(tmp_path):
    bad = tmp_path / "bad.config"
    bad.write_text(SMALL.read_text().replace("attn_num_layers: 2", "attn_num_layers: 0"))
    proc = subprocess.run([sys.executable, "-m", "components.orchestration.cli", "config", "validate", str(bad)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    line = bad.read_text()[: bad.read_text().index("attn_num_layers: 0")].count("\n") + 1
    assert f"bad.config:{line}: model_config.dlrm_hstu.hstu.attn_num_layers: must be > 0" in proc.stderr


def test_data_generate_then_oracle(tmp_path, capsys):
    out = tmp_path / "raw"
    assert main(["data", "generate", "--out", str(out), "--users", "200", "--days", "3", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["events"] > 0 and (out / "events" / "dt=2022-04-10").is_dir()
    assert main(["data", "oracle", "--data", str(out), "--window-start", "2022-04-10", "--train-days", "2",
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {"oracle", "oracle_window_start", "popularity", "logistic"}
    assert report["oracle"]["click"] > 0.6
    assert main(["data", "generate", "--out", str(out), "--users", "200", "--days", "3"]) == 2  # no overwrite


def test_rollback_without_champion_is_a_clear_error(tmp_path, capsys):
    cfg = tmp_path / "c.config"
    text = SMALL.read_text().replace("data_config {", f'data_config {{\n  work_dir: "{tmp_path}"', 1)
    cfg.write_text(text)
    assert main(["rollback", "--config", str(cfg)]) == 2
    assert "rollback: error:" in capsys.readouterr().err


def test_gate_of_an_unknown_version_is_a_clear_error(tmp_path, capsys):
    cfg = tmp_path / "c.config"
    text = SMALL.read_text().replace("data_config {", f'data_config {{\n  work_dir: "{tmp_path}"', 1)
    cfg.write_text(text)
    assert main(["gate", "--config", str(cfg), "--version", "7", "--window", "2022-04-15", "--dry-run"]) == 2
    assert "gate: error:" in capsys.readouterr().err


def test_model_summary_counts_parameters(capsys):
    assert main(["model", "summary", str(SMALL)]) == 0
    out = capsys.readouterr().out
    assert "DlrmHSTU: d=64, heads=2, layers=2" in out and "total" in out
    total = int(out.strip().splitlines()[-1].split()[-1].replace(",", ""))
    assert total > 1_000_000  # the two 100k-row id tables alone


# Every runnable subcommand with arguments that are wrong in a way found before any work starts (no Spark,
# MLflow or training): a config file that does not exist, or a date that is not YYYY-MM-DD.
MISSING = "/nonexistent/missing.config"
BAD_ARGUMENTS = {
    ("config", "validate"): [MISSING],
    ("config", "show"): [MISSING],
    ("data", "generate"): ["--out", "/nonexistent/raw", "--start-date", "2022-99-01"],
    ("data", "oracle"): ["--data", "/nonexistent/raw", "--window-start", "yesterday"],
    ("samples", "build"): ["--config", MISSING, "--window-start", "2022-04-10"],
    ("model", "summary"): [MISSING],
    ("tune",): ["--config", MISSING, "--window", "2022-04-10", "--trials", "1"],
    ("baselines",): ["--config", MISSING, "--window", "2022-04-10"],
    ("gate",): ["--config", MISSING, "--version", "1", "--window", "2022-04-10"],
    ("promote",): ["--config", MISSING, "--version", "1"],
    ("rollback",): ["--config", MISSING],
}


def _commands(parser: argparse.ArgumentParser, words: tuple[str, ...] = ()):
    """(words, parser) of every runnable subcommand (one with a handler), depth first."""
    if parser.get_default("handler") is not None:
        yield words, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, (*words, name))


def test_the_table_names_every_subcommand():
    assert {words for words, _ in _commands(build_parser())} == set(BAD_ARGUMENTS)


@pytest.mark.parametrize("words", sorted(BAD_ARGUMENTS), ids=" ".join)
def test_subcommand_conventions(words, capsys):
    """A one-line summary in --help, --json accepted, and a user error: exit 2, one line on stderr."""
    parser = dict(_commands(build_parser()))[words]
    assert parser.description and "\n" not in parser.description
    with pytest.raises(SystemExit) as shown:
        main([*words, "--help"])
    assert shown.value.code == 0 and parser.description in " ".join(capsys.readouterr().out.split())
    assert any(action.option_strings == ["--json"] for action in parser._actions)

    try:
        code = main([*words, "--json", *BAD_ARGUMENTS[words]])
    except SystemExit as exc:  # argparse's own checks (a bad date) exit from parse_args
        code = exc.code
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.count("\n") == 1 and "error:" in captured.err and "Traceback" not in captured.err
    assert captured.out == "" and "--json" not in captured.err  # the error is the bad argument, not --json
