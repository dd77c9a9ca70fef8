"""The promotion gate (docs/design.md §7): decide on per-task AUC, then record the decision and move registry aliases.

Three layers:

- :func:`decide` is pure: challenger and champion AUCs ``{task: auc}`` + rules -> :class:`GateDecision` with one
  row per gated task. A task passes when ``auc >= floor`` and ``auc >= champion_auc - max_regression`` (no
  champion: floors only). NaN/inf, an AUC outside [0, 1], a missing task, a failed challenger evaluation
  (``None``) and a failed or incomplete champion evaluation never pass. ``force=True`` promotes anyway but the
  verdict stays honest: ``passed`` is False, ``forced`` True, and both are written as tags.
- :func:`apply_decision` writes the decision to the registry: ``gate.*`` tags on the version, the markdown
  table as an artifact of the version's run (``gate/decision_v<V>_<time>.md``) and the alias moves: on a
  (forced) pass ``@previous_champion`` <- old champion, ``@champion`` <- the version; ``@challenger`` <- the
  newest evaluated version (highest version number). A dry run writes the tags and the table, moves no alias.
- :func:`run_gate` orchestrates: evaluates the challenger and the current champion *by version number* with
  the same ``evaluate(model_uri) -> {task: auc}`` on the same window, decides and applies. A raising evaluator
  is a failed evaluation: the version gets the rejection tags, nothing else changes. :func:`promote` and
  :func:`rollback` are the operators' manual moves.

Concurrency. MLflow aliases are single-valued (an alias names exactly one version), so two champions cannot
exist; what can go wrong is a lost update (two gates both read champion v5, both write previous_champion=v5)
or promoting on a stale comparison. Every alias read-check-write runs under an exclusive ``flock`` on the
registry lock file (beside the sqlite db, else ``<work_dir>/locks/``), and re-checks under the lock that
``@champion`` is still the version the decision was compared with: if another gate moved it meanwhile,
:func:`run_gate` re-evaluates against the new champion (``StaleChampionError`` after ``max_attempts``). After
the writes the aliases are read back; a mismatch (a writer that bypassed the lock: the UI, another host)
raises ``ConcurrentAliasUpdateError``. With a remote server used from several hosts, serialise gates with an
Airflow pool of one slot: the file lock only covers one host.
"""

from __future__ import annotations

import getpass
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from components.config import PipelineConfig, PromotionConfig, TaskRule
from components.registry.tracking import (
    check_tracking_server,
    clear_unreachable_errors,
    client_for,
    exclusive_lock,
    lock_path_for,
    model_version_uri,
    resolve_tracking_uri,
)

log = logging.getLogger(__name__)

CHAMPION, PREVIOUS_CHAMPION, CHALLENGER = "champion", "previous_champion", "challenger"
_MAX_TAG_CHARS = 5000


class StaleChampionError(RuntimeError):
    """``@champion`` moved between the evaluation and the alias update; the decision must be re-made."""


class ConcurrentAliasUpdateError(RuntimeError):
    """Aliases read back after a move differ from what was written: someone bypassed the registry lock."""


# ---------------------------------------------------------------- the pure decision


@dataclass(frozen=True)
class TaskCheck:
    """One gated task. AUCs are None when missing or not evaluated (NaN stays NaN)."""

    task: str
    challenger_auc: float | None
    champion_auc: float | None
    floor: float
    max_regression: float
    passed: bool
    reason: str


@dataclass(frozen=True)
class GateDecision:
    """``passed``: every gated task passed on the merits. ``forced``: force was given. ``promote``: either.
    ``evaluated``: the challenger's evaluation ran (False when it raised)."""

    passed: bool
    forced: bool
    has_champion: bool
    rows: tuple[TaskCheck, ...]
    evaluated: bool = True

    @property
    def promote(self) -> bool:
        return self.passed or self.forced

    @property
    def summary(self) -> str:
        failed = [f"{r.task}: {r.reason}" for r in self.rows if not r.passed]
        if not failed:
            return f"passed: all {len(self.rows)} gated tasks passed"
        verdict = "forced (gate failed)" if self.forced else "failed"
        return f"{verdict}: " + "; ".join(failed)


_NOT_A_TASK = object()  # the champion was trained without this task (a config that added one)


def _auc(metrics: Mapping[str, float], task: str) -> float | None:
    """The task's AUC: key ``task``, else ``auc/<task>`` (None when not a number)."""
    value = metrics.get(task, metrics.get(f"auc/{task}"))
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _bad(value: float | None, who: str) -> str | None:
    if value is None:
        return f"{who} AUC missing"
    if math.isnan(value) or math.isinf(value):
        return f"{who} AUC is {value}"
    if not 0.0 <= value <= 1.0:
        return f"{who} AUC {value:.4f} is outside [0, 1]"
    return None


def _check(task: str, rule: TaskRule, new: float | None, old: float | None, has_champion: bool,
           challenger_error: str | None, champion_error: str | None) -> TaskCheck:
    def row(passed: bool, reason: str) -> TaskCheck:
        return TaskCheck(task, new, None if old is _NOT_A_TASK else old, rule.auc_floor, rule.max_regression,
                         passed, reason)

    if challenger_error is not None:
        return row(False, f"challenger evaluation failed: {challenger_error}")
    if (why := _bad(new, "challenger")) is not None:
        return row(False, why)
    if new < rule.auc_floor:
        return row(False, f"AUC {new:.4f} < floor {rule.auc_floor:.4f}")
    if champion_error is not None:
        return row(False, f"champion evaluation failed: {champion_error}; cannot compare")
    if not has_champion:
        return row(True, f"AUC {new:.4f} >= floor {rule.auc_floor:.4f} (no champion: floor only)")
    if old is _NOT_A_TASK:
        return row(True, f"AUC {new:.4f} >= floor {rule.auc_floor:.4f} (the champion has no such task: floor only)")
    if (why := _bad(old, "champion")) is not None:
        return row(False, f"{why}; cannot compare")
    if new < old - rule.max_regression:
        return row(False, f"AUC {new:.4f} is {old - new:.4f} below champion {old:.4f} "
                          f"(allowed regression {rule.max_regression:.4f})")
    return row(True, f"AUC {new:.4f} >= floor {rule.auc_floor:.4f} and >= champion {old:.4f} - "
                     f"{rule.max_regression:.4f}")


def decide(challenger: Mapping[str, float] | None, champion: Mapping[str, float] | None,
           rules: PromotionConfig | Mapping[str, TaskRule], *, tasks: Sequence[str] | None = None,
           force: bool = False, challenger_error: str | None = None,
           champion_error: str | None = None) -> GateDecision:
    """Judges the challenger against the champion, task by task (docs/design.md §7). Pure: no I/O.

    Args:
        challenger: ``{task: auc}`` of the new version (``auc/<task>`` keys accepted); None = evaluation failed.
        champion: ``{task: auc}`` of the current champion on the same window; None = no champion. A gated task
            the champion has no key for (it was trained without it) is judged on its floor alone.
        rules: the promotion config (``rule(task)`` gives floor and allowed regression) or ``{task: TaskRule}``.
        tasks: the gated tasks; default ``rules.gated_tasks`` (or the mapping's keys). Must not be empty.
        force: promote whatever the verdict; recorded as forced, ``passed`` stays the honest verdict.
        challenger_error / champion_error: why an evaluation failed (a champion error fails every task).
    Returns:
        GateDecision with one TaskCheck per task, in ``tasks`` order.
    """
    if isinstance(rules, PromotionConfig):
        gated = tuple(tasks) if tasks is not None else rules.gated_tasks
        rule_of = rules.rule
    else:
        gated = tuple(tasks) if tasks is not None else tuple(rules)
        missing = [t for t in gated if t not in rules]
        if missing:
            raise ValueError(f"gate rules have no entry for tasks {missing}; rules cover {sorted(rules)}")
        rule_of = rules.__getitem__
    if not gated:
        raise ValueError("gate has no tasks to judge (gated_tasks is empty); an empty gate would pass vacuously")
    if challenger is None and challenger_error is None:
        challenger_error = "no metrics"
    has_champion = champion is not None or champion_error is not None
    def champion_auc(task: str):
        if champion is None:
            return None
        if task not in champion and f"auc/{task}" not in champion:
            return _NOT_A_TASK
        return _auc(champion, task)

    rows = tuple(_check(t, rule_of(t), None if challenger is None else _auc(challenger, t),
                        champion_auc(t), has_champion,
                        challenger_error, champion_error) for t in gated)
    return GateDecision(passed=all(r.passed for r in rows), forced=force, has_champion=has_champion, rows=rows,
                        evaluated=challenger_error is None)


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def render_markdown(decision: GateDecision, *, model_name: str = "", version: str | int = "",
                    champion_version: str | int | None = None, window: str = "", decided_at: str = "") -> str:
    """The decision as a markdown section: a verdict line and the per-task table."""
    verdict = "PASSED" if decision.passed else ("FORCED (gate failed)" if decision.forced else "FAILED")
    title = f"### Promotion gate: {model_name} version {version}: {verdict}".replace("  ", " ")
    champ = f"version {champion_version}" if champion_version is not None else "none (floors only)"
    lines = [title, "", f"window `{window}` · champion {champ} · decided {decided_at}", "",
             "| task | challenger AUC | champion AUC | floor | allowed regression | passed | reason |",
             "|---|---:|---:|---:|---:|:---:|---|"]
    for r in decision.rows:
        reason = r.reason.replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {r.task} | {_fmt(r.challenger_auc)} | {_fmt(r.champion_auc)} | {r.floor:.4f} | "
                     f"{r.max_regression:.4f} | {'yes' if r.passed else 'no'} | {reason} |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- the registry side


@dataclass(frozen=True)
class AliasState:
    """The three aliases of the registered model (version numbers as strings, None when unset)."""

    champion: str | None
    previous_champion: str | None
    challenger: str | None


@dataclass(frozen=True)
class AliasChange:
    """What a promote/rollback/apply did to the aliases."""

    model_name: str
    version: str
    before: AliasState
    after: AliasState
    forced: bool = False

    @property
    def changed(self) -> bool:
        return self.before != self.after


@dataclass(frozen=True)
class GateResult:
    """The outcome of :func:`run_gate`. ``champion_compared``: the champion version the decision used."""

    model_name: str
    version: str
    window: str
    decision: GateDecision
    champion_compared: str | None
    aliases: AliasChange
    promoted: bool
    dry_run: bool
    attempts: int
    markdown: str


_UNCHECKED = object()


def _stamp(at: datetime | str) -> str:
    return at.isoformat() if isinstance(at, datetime) else str(at)


def _aliases(client: MlflowClient, name: str) -> AliasState:
    a = {k: str(v) for k, v in client.get_registered_model(name).aliases.items()}
    return AliasState(a.get(CHAMPION), a.get(PREVIOUS_CHAMPION), a.get(CHALLENGER))


def current_aliases(config: PipelineConfig) -> AliasState:
    """The registered model's aliases now (all None when the model is not registered yet)."""
    uri = resolve_tracking_uri(config)
    check_tracking_server(uri)
    name = config.promotion.registered_model_name
    with clear_unreachable_errors(uri):
        try:
            return _aliases(client_for(uri), name)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            return AliasState(None, None, None)


def _model_version(client: MlflowClient, name: str, version: str | int):
    try:
        return client.get_model_version(name, str(version))
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE"):
            raise ValueError(f"registered model {name!r} has no version {version!r}: {exc.message}") from None
        raise


def _set_tags(client: MlflowClient, name: str, version: str, tags: Mapping[str, object]) -> None:
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, str(value)[:_MAX_TAG_CHARS])


def _locked_update(client: MlflowClient, name: str, lock: str, *, champion: str | None = None,
                   expected_champion: object = _UNCHECKED, challenger: str | None = None) -> AliasChange:
    """Under the registry lock: check ``@champion`` is ``expected_champion``, move ``@champion`` to ``champion``
    (old one -> ``@previous_champion``), ``@challenger`` to ``challenger`` if it is newer; read back and verify."""
    champion = None if champion is None else str(champion)
    challenger = None if challenger is None else str(challenger)
    with exclusive_lock(lock):
        before = _aliases(client, name)
        if expected_champion is not _UNCHECKED and before.champion != expected_champion:
            raise StaleChampionError(f"@{CHAMPION} of {name} moved from {expected_champion} to {before.champion} "
                                     "since the evaluation; the comparison must be re-made")
        if champion is not None and champion != before.champion:
            if before.champion is not None:  # previous first: a crash in between leaves a valid rollback target
                client.set_registered_model_alias(name, PREVIOUS_CHAMPION, before.champion)
            client.set_registered_model_alias(name, CHAMPION, champion)
        if challenger is not None and (before.challenger is None or int(challenger) >= int(before.challenger)):
            client.set_registered_model_alias(name, CHALLENGER, challenger)
        after = _aliases(client, name)
    moved = champion is not None and champion != before.champion
    expect_prev = before.champion if moved and before.champion is not None else before.previous_champion
    if (champion is not None and after.champion != champion) or after.previous_champion != expect_prev:
        raise ConcurrentAliasUpdateError(
            f"aliases of {name} changed under the registry lock by another writer: wrote champion={champion}, "
            f"previous_champion={expect_prev}; read back {after}. Check the registry and re-run")
    return AliasChange(name, champion or before.champion or "", before, after)


def apply_decision(*, config: PipelineConfig, version: str | int, decision: GateDecision, window: str,
                   decided_at: datetime | str, champion_compared: str | None, dry_run: bool = False) -> AliasChange:
    """Records ``decision`` for ``version`` and, on a (forced) pass, moves the aliases.

    Tags (prefix ``gate.``; ``gate_dry_run.`` for dry runs, so a dry run never overwrites a real decision):
    ``passed``, ``forced``, ``promoted``, ``window``, ``decided_at``, ``champion_version``, ``summary``,
    ``reason.<task>``, ``auc.<task>``, ``champion_auc.<task>``. The markdown table goes to the version's run as
    ``gate/decision_v<V>_<decided_at>.md``. ``@challenger`` moves when the challenger was evaluated.

    Raises StaleChampionError when ``@champion`` is no longer ``champion_compared`` (tags say so first).
    """
    uri = resolve_tracking_uri(config)
    name = config.promotion.registered_model_name
    client = client_for(uri)
    lock = str(lock_path_for(uri, config.data.work_dir))
    version = str(version)
    with clear_unreachable_errors(uri):
        mv = _model_version(client, name, version)
        stale = None
        if dry_run:
            state = _aliases(client, name)
            change = AliasChange(name, version, state, state, decision.forced)
        else:
            try:
                change = _locked_update(client, name, lock, champion=version if decision.promote else None,
                                        expected_champion=champion_compared if decision.promote else _UNCHECKED,
                                        challenger=version if decision.evaluated else None)
            except StaleChampionError as exc:
                stale, change = str(exc), None
        promoted = change is not None and change.after.champion == version and decision.promote and not dry_run
        _record(client, name, mv, decision, window=window, decided_at=_stamp(decided_at), dry_run=dry_run,
                champion_compared=champion_compared, promoted=promoted, stale=stale)
    if stale is not None:
        raise StaleChampionError(stale)
    log.info("gate %s for %s version %s (window %s): %s%s", "dry run" if dry_run else "decision", name, version,
             window, decision.summary, "; promoted to @champion" if promoted else "")
    return AliasChange(name, version, change.before, change.after, decision.forced)


def _record(client: MlflowClient, name: str, mv, decision: GateDecision, *, window: str, decided_at: str,
            dry_run: bool, champion_compared: str | None, promoted: bool, stale: str | None) -> None:
    prefix = "gate_dry_run." if dry_run else "gate."
    tags: dict[str, object] = {
        "passed": str(decision.passed).lower(), "forced": str(decision.forced).lower(),
        "promoted": str(promoted).lower(), "window": window, "decided_at": decided_at,
        "champion_version": champion_compared or "none", "summary": stale or decision.summary}
    for r in decision.rows:
        tags[f"reason.{r.task}"] = r.reason
        tags[f"auc.{r.task}"] = "missing" if r.challenger_auc is None else repr(r.challenger_auc)
        tags[f"champion_auc.{r.task}"] = "missing" if r.champion_auc is None else repr(r.champion_auc)
    _set_tags(client, name, mv.version, {prefix + k: v for k, v in tags.items()})
    if mv.run_id:
        md = render_markdown(decision, model_name=name, version=mv.version, champion_version=champion_compared,
                             window=window, decided_at=decided_at)
        kind = "dry_run" if dry_run else "decision"
        client.log_text(mv.run_id, md, f"gate/{kind}_v{mv.version}_{decided_at.replace(':', '')}.md")
    else:
        log.warning("%s version %s has no run; the gate table is only in its tags", name, mv.version)


def _evaluate(evaluate: Callable[[str], Mapping[str, float]], uri: str) -> tuple[dict | None, str | None]:
    """Runs the evaluator; any exception or a non-mapping result is a failed evaluation (with its reason)."""
    try:
        metrics = evaluate(uri)
    except Exception as exc:  # noqa: BLE001 - a failed evaluation must never pass, whatever it raised
        log.warning("evaluation of %s failed", uri, exc_info=True)
        return None, f"{type(exc).__name__}: {exc}"[:500]
    if not isinstance(metrics, Mapping):
        return None, f"evaluator returned {type(metrics).__name__}, expected a mapping {{task: auc}}"
    return dict(metrics), None


def run_gate(*, config: PipelineConfig, challenger_version: str | int,
             evaluate: Callable[[str], Mapping[str, float]], window: str, dry_run: bool = False,
             force: bool = False, decided_at: datetime | None = None, max_attempts: int = 3) -> GateResult:
    """Evaluates ``challenger_version`` and the current champion, decides, records, moves aliases (docs/design.md §7).

    Args:
        evaluate: ``model_uri -> {task: auc}`` on ``window``, the same evaluator for both models (it receives
            ``models:/NAME/VERSION``, never an alias, so what it scores cannot move underneath it).
        decided_at: the decision time written in the tags; default now (UTC), taken here at the edge.
        max_attempts: how often to re-decide when another gate moved ``@champion`` meanwhile.
    Raises:
        TrackingUnavailableError (server down), ValueError (no such version), StaleChampionError.
    """
    uri = resolve_tracking_uri(config)
    check_tracking_server(uri)
    name = config.promotion.registered_model_name
    version = str(challenger_version)
    decided_at = decided_at or datetime.now(UTC)
    client = client_for(uri)
    with clear_unreachable_errors(uri):
        _model_version(client, name, version)
    scores: dict[str, tuple[dict | None, str | None]] = {version: _evaluate(evaluate, model_version_uri(name, version))}
    for attempt in range(1, max_attempts + 1):
        with clear_unreachable_errors(uri):
            champion = _aliases(client, name).champion
        challenger, challenger_error = scores[version]
        champion_scores, champion_error = None, None
        if champion is not None and challenger_error is None:  # no point scoring the champion otherwise
            if champion not in scores:
                scores[champion] = _evaluate(evaluate, model_version_uri(name, champion))
            champion_scores, champion_error = scores[champion]
        decision = decide(challenger, champion_scores, config.promotion, force=force,
                          challenger_error=challenger_error, champion_error=champion_error)
        try:
            change = apply_decision(config=config, version=version, decision=decision, window=window,
                                    decided_at=decided_at, champion_compared=champion, dry_run=dry_run)
        except StaleChampionError:
            if attempt == max_attempts:
                raise
            log.info("champion of %s moved during the gate of version %s; re-deciding (attempt %d)",
                     name, version, attempt + 1)
            continue
        md = render_markdown(decision, model_name=name, version=version, champion_version=champion,
                             window=window, decided_at=_stamp(decided_at))
        promoted = decision.promote and not dry_run and change.after.champion == version
        return GateResult(name, version, window, decision, champion, change, promoted, dry_run, attempt, md)
    raise AssertionError("unreachable: the loop returns or raises")


def promote(*, config: PipelineConfig, version: str | int, force: bool = False, actor: str | None = None,
            reason: str = "", at: datetime | None = None) -> AliasChange:
    """Manual promotion: ``@champion`` -> ``version`` (old champion -> ``@previous_champion``).

    Refuses (ValueError) a version without a passing gate decision (tag ``gate.passed=true``) unless ``force``;
    a forced promotion is tagged ``promote.forced``, ``promote.by`` (``actor``, default the OS user) and
    ``promote.reason``. Tags ``promote.at``, ``promote.replaced_champion`` are always written.
    """
    uri = resolve_tracking_uri(config)
    check_tracking_server(uri)
    name = config.promotion.registered_model_name
    client = client_for(uri)
    with clear_unreachable_errors(uri):
        mv = _model_version(client, name, version)
        gate_passed = mv.tags.get("gate.passed")
        if gate_passed != "true" and not force:
            raise ValueError(f"{name} version {mv.version} has no passing gate decision (gate.passed="
                             f"{gate_passed or 'missing'}); run the gate, or force it with a reason")
        version = str(mv.version)
        change = _locked_update(client, name, str(lock_path_for(uri, config.data.work_dir)), champion=version)
        _set_tags(client, name, version, {
            "promote.at": _stamp(at or datetime.now(UTC)), "promote.by": actor or getpass.getuser(),
            "promote.forced": str(force and gate_passed != "true").lower(), "promote.reason": reason or "(none)",
            "promote.replaced_champion": change.before.champion or "none"})
    log.info("promoted %s version %s to @champion (was %s)", name, version, change.before.champion)
    return AliasChange(name, version, change.before, change.after, force)


def rollback(*, config: PipelineConfig, to_version: str | int | None = None, actor: str | None = None,
             reason: str = "", at: datetime | None = None) -> AliasChange:
    """``@champion`` -> ``to_version`` (default ``@previous_champion``); the rolled-back champion becomes
    ``@previous_champion``. Tags the restored version ``rollback.at``, ``rollback.by``, ``rollback.reason``,
    ``rollback.from_version``. Raises ValueError when there is no target or it is already the champion.
    """
    uri = resolve_tracking_uri(config)
    check_tracking_server(uri)
    name = config.promotion.registered_model_name
    client = client_for(uri)
    with clear_unreachable_errors(uri):
        state = _aliases(client, name)
        target = str(to_version) if to_version is not None else state.previous_champion
        if target is None:
            raise ValueError(f"{name} has no @{PREVIOUS_CHAMPION} to roll back to; give a version (--to V)")
        target = str(_model_version(client, name, target).version)
        if target == state.champion:
            raise ValueError(f"{name} version {target} is already @{CHAMPION}; nothing to roll back")
        change = _locked_update(client, name, str(lock_path_for(uri, config.data.work_dir)), champion=target,
                                expected_champion=state.champion)
        _set_tags(client, name, target, {
            "rollback.at": _stamp(at or datetime.now(UTC)), "rollback.by": actor or getpass.getuser(),
            "rollback.reason": reason or "(none)", "rollback.from_version": state.champion or "none"})
    log.info("rolled %s @champion back from %s to %s", name, state.champion, target)
    return change
