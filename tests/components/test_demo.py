"""The demo's closing summary reads the trainer's result files."""

import json
from datetime import date

from components.orchestration.demo import _summary


def test_summary_prints_model_oracle_and_baselines(tmp_path, capsys):
    run = tmp_path / "runs" / "2022-04-15"
    run.mkdir(parents=True)
    run.joinpath("result.json").write_text(json.dumps({
        "registered_version": "2", "steps": 174, "final_loss": 0.72,
        "metrics": {"eval/is_click/auc": 0.6157, "eval/is_click/grouped_auc": 0.5951,
                    "eval/oracle/is_click/auc": 0.8156},
        "references": {"oracle": {"is_click": 0.8156}, "baseline_popularity": {"is_click": 0.5885}}}))
    _summary(tmp_path, [date(2022, 4, 15)])
    out = capsys.readouterr().out
    assert "window 2022-04-15: version 2, 174 steps" in out
    row = next(line for line in out.splitlines() if line.strip().startswith("is_click"))
    assert row.split()[1:] == ["0.6157", "0.5951", "0.8156", "0.5885"]
