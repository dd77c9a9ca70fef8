"""The promotion gate: every branch of the pure decision, the markdown table, and the registry side (tags,
aliases, dry run, force, promote/rollback, racing gates) against a real sqlite MLflow store."""

from __future__ import annotations

import dataclasses
import math
import socket
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
import torch

from components.config import PromotionConfig, TaskRule, TrackingConfig, load_config
from components.registry.aliases import StaleChampionError, promote, rollback
from components.registry.decision import decide, render_markdown
from components.registry.gate import apply_decision, run_gate
from components.registry.runs import start_run
from components.registry.store import TrackingUnavailableError, client_for, connect
from components.registry.versions import register_version

REPO = Path(__file__).resolve().parents[2]
RULES = PromotionConfig("m", 0.55, 0.01, (TaskRule("is_like", 0.60, 0.02),), ("is_click", "is_like"))
AT = datetime(2022, 4, 10, 3, 0, tzinfo=UTC)
GOOD = {"is_click": 0.70, "is_like": 0.72}


# ---------------------------------------------------------------- decide (pure)


def _row(decision, task):
    return next(r for r in decision.rows if r.task == task)


def test_passes_when_every_task_clears_floor_and_regression():
    d = decide({"is_click": 0.70, "is_like": 0.71}, {"is_click": 0.705, "is_like": 0.72}, RULES)
    assert d.passed and d.promote and not d.forced
    assert [r.task for r in d.rows] == ["is_click", "is_like"]
    assert _row(d, "is_like").floor == 0.60 and _row(d, "is_like").max_regression == 0.02  # its own rule
    assert _row(d, "is_click").floor == 0.55 and _row(d, "is_click").max_regression == 0.01  # defaults


def test_floor_failure_names_task_value_and_floor():
    d = decide({"is_click": 0.70, "is_like": 0.59}, None, RULES)
    assert not d.passed and not d.promote
    assert _row(d, "is_click").passed and not _row(d, "is_like").passed
    assert _row(d, "is_like").reason == "AUC 0.5900 < floor 0.6000"


def test_regression_beyond_allowance_fails_and_within_passes():
    d = decide({"is_click": 0.688, "is_like": 0.72}, {"is_click": 0.70, "is_like": 0.72}, RULES)
    assert not d.passed and "0.0120 below champion 0.7000" in _row(d, "is_click").reason
    d = decide({"is_click": 0.691, "is_like": 0.701}, {"is_click": 0.70, "is_like": 0.72}, RULES)
    assert d.passed


@pytest.mark.parametrize("bad", [math.nan, math.inf, 1.5, "n/a"])
def test_invalid_auc_never_passes(bad):
    d = decide({"is_click": bad, "is_like": 0.9}, None, RULES)
    assert not d.passed and not d.promote and not _row(d, "is_click").passed


def test_missing_task_metric_fails_and_auc_prefixed_keys_are_read():
    d = decide({"is_click": 0.7}, None, RULES)
    assert not d.passed and _row(d, "is_like").reason == "challenger AUC missing"
    assert decide({"auc/is_click": 0.7, "auc/is_like": 0.7}, None, RULES).passed


def test_failed_evaluation_fails_every_task():
    d = decide(None, GOOD, RULES, challenger_error="RuntimeError: CUDA OOM")
    assert not d.passed and all("challenger evaluation failed: RuntimeError: CUDA OOM" in r.reason for r in d.rows)


def test_no_champion_judges_floors_only():
    d = decide({"is_click": 0.56, "is_like": 0.61}, None, RULES)
    assert d.passed and not d.has_champion and "floor only" in _row(d, "is_click").reason


def test_champion_nan_missing_or_failed_cannot_be_compared():
    assert not decide(GOOD, {"is_click": math.nan, "is_like": 0.7}, RULES).passed
    assert "champion AUC missing" in _row(decide(GOOD, {"is_click": 0.7, "is_like": None}, RULES), "is_like").reason
    d = decide(GOOD, None, RULES, champion_error="ValueError: corrupt")
    assert not d.passed and d.has_champion and "champion evaluation failed" in d.rows[0].reason


def test_a_task_the_champion_was_not_trained_for_is_judged_on_its_floor():
    # The config added is_like after the champion was trained: common tasks are compared, the new one floor only.
    d = decide(GOOD, {"is_click": 0.705}, RULES)
    assert d.passed and "the champion has no such task: floor only" in _row(d, "is_like").reason
    assert "champion 0.7050" in _row(d, "is_click").reason and _row(d, "is_like").champion_auc is None
    assert not decide({"is_click": 0.70, "is_like": 0.55}, {"is_click": 0.705}, RULES).passed  # below its floor


def test_force_promotes_but_is_recorded_as_a_failed_verdict():
    d = decide({"is_click": math.nan, "is_like": 0.1}, GOOD, RULES, force=True)
    assert d.promote and d.forced and not d.passed and d.summary.startswith("forced (gate failed)")
    d = decide(None, None, RULES, force=True)
    assert d.promote and not d.passed


def test_rules_as_mapping_tasks_override_and_empty_gate_refused():
    rules = {"a": TaskRule("a", 0.5, 0.0), "b": TaskRule("b", 0.9, 0.0)}
    assert decide({"a": 0.6, "b": 0.1}, None, rules, tasks=["a"]).passed
    assert not decide({"a": 0.6, "b": 0.1}, None, rules).passed
    with pytest.raises(ValueError, match="no entry for tasks"):
        decide({"c": 0.9}, None, rules, tasks=["c"])
    with pytest.raises(ValueError, match="no tasks"):
        decide(GOOD, None, RULES, tasks=[])


def test_markdown_table_has_a_row_per_task_with_values_and_reasons():
    d = decide({"is_click": 0.7, "is_like": 0.5}, {"is_click": 0.69, "is_like": 0.7}, RULES)
    md = render_markdown(d, model_name="dlrm_hstu", version=7, champion_version=5, window="2022-04-09",
                         decided_at="2022-04-10T03:00:00+00:00")
    lines = md.splitlines()
    assert lines[0] == "### Promotion gate: dlrm_hstu version 7: FAILED"
    assert "champion version 5" in md and "`2022-04-09`" in md
    assert "| task | challenger AUC | champion AUC | floor | allowed regression | passed | reason |" in lines
    assert "| is_click | 0.7000 | 0.6900 | 0.5500 | 0.0100 | yes |" in md
    assert "| is_like | 0.5000 | 0.7000 | 0.6000 | 0.0200 | no | AUC 0.5000 < floor 0.6000 |" in md
    assert "— |" in render_markdown(decide(None, None, RULES), version=1)


# ---------------------------------------------------------------- registry side (real sqlite store)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A sqlite store with one finished run holding a tiny logged torch module (each test registers its own
    versions of it under its own model name)."""
    work = tmp_path_factory.mktemp("gate")
    base = load_config(REPO / "configs" / "small_cpu.config")
    cfg = base.replace(data=dataclasses.replace(base.data, work_dir=str(work)),
                       tracking=TrackingConfig(f"sqlite:///{work}/mlflow.db", "gate_tests", False))
    target = connect(cfg)
    with start_run(target, dag_id="hstu_daily", dag_run_id="r", window="2022-04-09") as run:
        logged = run.log_model(torch.nn.Linear(3, 1))
    return cfg, target, run.run_id, logged.model_uri


def _setup(store, name: str, n_versions: int):
    cfg, target, run_id, model_uri = store
    cfg = cfg.replace(promotion=dataclasses.replace(RULES, registered_model_name=name))
    versions = [register_version(target, run_id=run_id, model_uri=model_uri, window="2022-04-09",
                                 model_name=name).version for _ in range(n_versions)]
    return cfg, client_for(target.tracking_uri), versions


def _evaluator(scores: dict[str, object], calls: list | None = None):
    """``models:/NAME/V`` -> scores[V]; an exception in scores is raised."""
    def evaluate(uri: str):
        version = uri.rsplit("/", 1)[1]
        if calls is not None:
            calls.append(version)
        result = scores[version]
        if isinstance(result, Exception):
            raise result
        return result
    return evaluate


def _aliases(client, name):
    return {k: str(v) for k, v in client.get_registered_model(name).aliases.items()}


def test_gate_promotes_first_then_better_version_and_records_everything(store):
    cfg, client, (v1, v2) = _setup(store, "g_pass", 2)
    calls = []
    ev = _evaluator({v1: {"is_click": 0.60, "is_like": 0.65}, v2: GOOD}, calls)
    first = run_gate(config=cfg, challenger_version=v1, evaluate=ev, window="2022-04-09", decided_at=AT)
    assert first.promoted and first.champion_compared is None
    assert _aliases(client, "g_pass") == {"champion": v1, "challenger": v1}
    second = run_gate(config=cfg, challenger_version=v2, evaluate=ev, window="2022-04-10", decided_at=AT)
    assert second.promoted and second.champion_compared == v1 and calls == [v1, v2, v1]
    assert _aliases(client, "g_pass") == {"champion": v2, "previous_champion": v1, "challenger": v2}
    tags = client.get_model_version("g_pass", v2).tags
    assert tags["gate.passed"] == "true" and tags["gate.promoted"] == "true" and tags["gate.forced"] == "false"
    assert tags["gate.champion_version"] == v1 and tags["gate.window"] == "2022-04-10"
    assert tags["gate.decided_at"] == "2022-04-10T03:00:00+00:00"
    assert float(tags["gate.auc.is_like"]) == 0.72 and float(tags["gate.champion_auc.is_like"]) == 0.65
    assert tags["gate.reason.is_click"].startswith("AUC 0.7000 >= floor")
    run_id = client.get_model_version("g_pass", v2).run_id
    md_files = [a.path for a in client.list_artifacts(run_id, "gate") if f"_v{v2}_" in a.path]
    assert md_files == [f"gate/decision_v{v2}_2022-04-10T030000+0000.md"]
    assert "| is_click | 0.7000 | 0.6000 |" in Path(client.download_artifacts(run_id, md_files[0])).read_text()


def test_failing_gate_tags_reasons_and_moves_only_challenger(store):
    cfg, client, (v1, v2) = _setup(store, "g_fail", 2)
    client.set_registered_model_alias("g_fail", "champion", v1)
    ev = _evaluator({v1: GOOD, v2: {"is_click": 0.65, "is_like": 0.72}})
    result = run_gate(config=cfg, challenger_version=v2, evaluate=ev, window="w", decided_at=AT)
    assert not result.promoted and not result.decision.passed
    assert _aliases(client, "g_fail") == {"champion": v1, "challenger": v2}
    tags = client.get_model_version("g_fail", v2).tags
    assert tags["gate.passed"] == "false" and tags["gate.promoted"] == "false"
    assert "below champion 0.7000" in tags["gate.reason.is_click"] and "is_click" in tags["gate.summary"]


def test_raising_evaluator_leaves_registry_untouched_except_rejection_tags(store):
    cfg, client, (v1, v2) = _setup(store, "g_raise", 2)
    client.set_registered_model_alias("g_raise", "champion", v1)
    ev = _evaluator({v1: GOOD, v2: RuntimeError("loader crashed")})
    result = run_gate(config=cfg, challenger_version=v2, evaluate=ev, window="w", decided_at=AT)
    assert not result.promoted
    assert _aliases(client, "g_raise") == {"champion": v1}
    tags = client.get_model_version("g_raise", v2).tags
    assert tags["gate.passed"] == "false" and tags["gate.auc.is_click"] == "missing"
    assert tags["gate.reason.is_like"] == "challenger evaluation failed: RuntimeError: loader crashed"


def test_nan_metric_never_promotes(store):
    cfg, client, (v1,) = _setup(store, "g_nan", 1)
    ev = _evaluator({v1: {"is_click": math.nan, "is_like": 0.9}})
    assert not run_gate(config=cfg, challenger_version=v1, evaluate=ev, window="w", decided_at=AT).promoted
    assert "champion" not in _aliases(client, "g_nan")
    assert client.get_model_version("g_nan", v1).tags["gate.auc.is_click"] == "nan"


def test_dry_run_records_under_its_own_prefix_and_moves_no_alias(store):
    cfg, client, (v1, v2) = _setup(store, "g_dry", 2)
    client.set_registered_model_alias("g_dry", "champion", v1)
    ev = _evaluator({v1: {"is_click": 0.6, "is_like": 0.65}, v2: GOOD})
    result = run_gate(config=cfg, challenger_version=v2, evaluate=ev, window="w", dry_run=True, decided_at=AT)
    assert result.decision.passed and not result.promoted and result.dry_run
    assert _aliases(client, "g_dry") == {"champion": v1}
    tags = client.get_model_version("g_dry", v2).tags
    assert tags["gate_dry_run.passed"] == "true" and tags["gate_dry_run.promoted"] == "false"
    assert not any(k.startswith("gate.") for k in tags)


def test_forced_gate_promotes_a_failing_version_and_says_so(store):
    cfg, client, (v1, v2) = _setup(store, "g_force", 2)
    client.set_registered_model_alias("g_force", "champion", v1)
    ev = _evaluator({v1: GOOD, v2: {"is_click": 0.5, "is_like": 0.5}})
    result = run_gate(config=cfg, challenger_version=v2, evaluate=ev, window="w", force=True, decided_at=AT)
    assert result.promoted and not result.decision.passed
    assert _aliases(client, "g_force") == {"champion": v2, "previous_champion": v1, "challenger": v2}
    tags = client.get_model_version("g_force", v2).tags
    assert (tags["gate.passed"], tags["gate.forced"], tags["gate.promoted"]) == ("false", "true", "true")


def test_stale_champion_is_refused_without_moving_aliases(store):
    cfg, client, (v1, v2, v3) = _setup(store, "g_stale", 3)
    client.set_registered_model_alias("g_stale", "champion", v2)
    decision = decide(GOOD, GOOD, cfg.promotion)
    with pytest.raises(StaleChampionError, match=f"moved from {v1} to {v2}"):
        apply_decision(config=cfg, version=v3, decision=decision, window="w", decided_at=AT,
                       champion_compared=v1)
    assert _aliases(client, "g_stale") == {"champion": v2}
    assert client.get_model_version("g_stale", v3).tags["gate.promoted"] == "false"


def test_manual_promote_refuses_unevaluated_unless_forced_and_rollback_restores(store):
    cfg, client, (v1, v2, v3) = _setup(store, "g_manual", 3)
    with pytest.raises(ValueError, match="no passing gate decision"):
        promote(config=cfg, version=v1)
    promote(config=cfg, version=v1, force=True, actor="alice", reason="bootstrap", at=AT)
    tags = client.get_model_version("g_manual", v1).tags
    assert (tags["promote.forced"], tags["promote.by"], tags["promote.reason"]) == ("true", "alice", "bootstrap")
    client.set_model_version_tag("g_manual", v2, "gate.passed", "true")
    change = promote(config=cfg, version=v2, actor="bob", at=AT)
    assert change.before.champion == v1 and change.after.champion == v2
    assert client.get_model_version("g_manual", v2).tags["promote.forced"] == "false"

    back = rollback(config=cfg, actor="carol", reason="bad CTR", at=AT)
    assert _aliases(client, "g_manual") == {"champion": v1, "previous_champion": v2} and back.changed
    assert client.get_model_version("g_manual", v1).tags["rollback.from_version"] == v2
    rollback(config=cfg, to_version=v3, at=AT)
    assert _aliases(client, "g_manual") == {"champion": v3, "previous_champion": v1}
    with pytest.raises(ValueError, match="already @champion"):
        rollback(config=cfg, to_version=v3)
    with pytest.raises(ValueError, match="no version '99'"):
        rollback(config=cfg, to_version=99)


def test_rollback_without_previous_champion_is_refused(store):
    cfg, client, (v1,) = _setup(store, "g_noprev", 1)
    client.set_registered_model_alias("g_noprev", "champion", v1)
    with pytest.raises(ValueError, match="no @previous_champion"):
        rollback(config=cfg)


def test_racing_gates_end_with_one_champion_and_a_consistent_previous(store):
    cfg, client, (v1, va, vb) = _setup(store, "g_race", 3)
    client.set_registered_model_alias("g_race", "champion", v1)
    both_evaluated = threading.Barrier(2, timeout=60)
    base = _evaluator({v1: {"is_click": 0.6, "is_like": 0.65}, va: GOOD, vb: GOOD})

    waited = set()

    def evaluate(uri):  # both challengers are scored before either applies: a real race on the aliases
        scores = base(uri)
        if uri.endswith((f"/{va}", f"/{vb}")) and uri not in waited:
            waited.add(uri)
            both_evaluated.wait()
        return scores

    results, errors = {}, []

    def gate(version):
        try:
            results[version] = run_gate(config=cfg, challenger_version=version, evaluate=evaluate,
                                        window="w", decided_at=AT)
        except Exception as exc:  # noqa: BLE001 - surfaced by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=gate, args=(v,)) for v in (va, vb)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert all(r.promoted for r in results.values())
    first, second = sorted(results, key=lambda v: results[v].attempts)
    assert results[first].attempts == 1 and results[second].attempts == 2
    assert results[second].champion_compared == first  # re-decided against the new champion
    assert _aliases(client, "g_race") == {"champion": second, "previous_champion": first, "challenger": vb}
    assert client.get_model_version("g_race", first).tags["gate.champion_version"] == v1


def _evaluated(challenger: str, champion: str | None, champion_scores=None) -> dict:
    """What the DAG's evaluate task hands the gate task (components.orchestration.daily.evaluate_challenger_and_champion)."""
    return {"window": "2022-04-10", "challenger_version": challenger, "challenger": GOOD, "challenger_error": None,
            "champion_version": champion, "champion": champion_scores, "champion_error": None}


def test_racing_dag_gate_tasks_end_with_one_champion(store, monkeypatch):
    """Two DAG runs' gate tasks (the code the DAG runs) decide against the same champion, then race to move it:
    the loser scores the winner and decides again instead of failing the run."""
    import components.registry.gate as gate_module
    from components.orchestration.daily import gate_challenger

    cfg, client, (v1, va, vb) = _setup(store, "g_dag_race", 3)
    client.set_registered_model_alias("g_dag_race", "champion", v1)
    both_decided, first_apply, real_apply = threading.Barrier(2, timeout=60), set(), gate_module.apply_decision

    def apply_after_both_decided(**kwargs):
        if threading.get_ident() not in first_apply:
            first_apply.add(threading.get_ident())
            both_decided.wait()
        return real_apply(**kwargs)

    monkeypatch.setattr(gate_module, "apply_decision", apply_after_both_decided)
    rescored, results, errors = [], {}, []

    def score(config, day, version):
        rescored.append(version)
        return GOOD

    def gate(version):
        try:
            results[version] = gate_challenger(config=cfg, evaluated=_evaluated(version, v1, {"is_click": 0.6,
                                               "is_like": 0.65}), force=False, dry_run=False,
                                               decided_at=AT.isoformat(), score=score)
        except Exception as exc:  # noqa: BLE001 - surfaced by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=gate, args=(v,)) for v in (va, vb)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    first, second = sorted(results, key=lambda v: results[v]["attempts"])
    assert results[first]["attempts"] == 1 and results[second]["attempts"] == 2
    assert results[second]["champion_compared"] == first and rescored == [first]
    assert all(r["promoted"] for r in results.values())
    assert _aliases(client, "g_dag_race")["champion"] == second


def test_dag_gate_task_scores_a_champion_that_moved_after_the_evaluation(store):
    from components.orchestration.daily import gate_challenger

    cfg, client, (v1, v2, v3) = _setup(store, "g_moved", 3)
    evaluated = _evaluated(v2, v1, {"is_click": 0.6, "is_like": 0.65})
    client.set_registered_model_alias("g_moved", "champion", v3)  # another run promoted v3 meanwhile
    rescored = []

    def score(config, day, version):
        rescored.append((version, day.isoformat()))
        return {"is_click": 0.75, "is_like": 0.8}

    out = gate_challenger(config=cfg, evaluated=evaluated, force=False, dry_run=False, decided_at=AT.isoformat(),
                          score=score)
    assert rescored == [(v3, "2022-04-10")] and out["champion_compared"] == v3
    assert not out["promoted"] and out["champion"] == v3 and "below champion" in out["table"]


def test_gate_against_a_down_server_fails_clearly_before_evaluating(store):
    cfg, _, _, _ = store
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = cfg.replace(tracking=TrackingConfig(f"http://127.0.0.1:{port}", "x", False))
    calls = []
    with pytest.raises(TrackingUnavailableError, match=f"at http://127.0.0.1:{port} is unreachable"):
        run_gate(config=cfg, challenger_version=1, evaluate=_evaluator({}, calls), window="w")
    assert calls == []


def test_current_aliases_of_unregistered_and_promoted_models(store):
    from components.registry.aliases import AliasState, current_aliases
    from components.registry.gate import run_gate

    cfg, _, versions = _setup(store, "aliases_model", 1)
    unknown = cfg.replace(promotion=dataclasses.replace(cfg.promotion, registered_model_name="never_registered"))
    assert current_aliases(unknown) == AliasState(None, None, None)
    run_gate(config=cfg, challenger_version=versions[0], evaluate=_evaluator({versions[0]: GOOD}),
             window="2022-04-09")
    assert current_aliases(cfg).champion == versions[0]


def test_annotate_run_adds_tags_and_text(store):
    from components.registry.runs import annotate_run

    cfg, target, run_id, _ = store
    annotate_run(cfg, run_id, tags={"hstu.outcome": "promoted"}, texts={"report.md": "# done\n"})
    client = client_for(target.tracking_uri)
    assert client.get_run(run_id).data.tags["hstu.outcome"] == "promoted"
    assert "report.md" in [a.path for a in client.list_artifacts(run_id)]


def test_find_version_finds_what_a_dag_run_registered(store):
    from components.registry.versions import find_version

    cfg, _, versions = _setup(store, "retry_model", 2)
    assert find_version(cfg, tags={"dag_run_id": "r", "window": "2022-04-09"}) == versions[-1]
    assert find_version(cfg, tags={"dag_run_id": "another run", "window": "2022-04-09"}) is None
    unknown = cfg.replace(promotion=dataclasses.replace(cfg.promotion, registered_model_name="nothing_yet"))
    assert find_version(unknown, tags={"dag_run_id": "r"}) is None
