"""The promotion gate (docs/design.md §7): score the challenger and the champion, decide, record the decision and
move the aliases.

- :func:`run_gate` evaluates the challenger and the current champion *by version number* with the same
  ``evaluate(model_uri) -> {task: auc}`` on the same window, decides (``decision.decide``, pure) and applies. A
  raising evaluator is a failed evaluation: the version gets the rejection tags, nothing else changes. If
  another gate moved ``@champion`` meanwhile, it re-evaluates against the new champion (``StaleChampionError``
  after ``max_attempts``).
- :func:`apply_decision` writes the decision to the registry: ``gate.*`` tags on the version, the markdown
  table as an artifact of the version's run (``gate/decision_v<V>_<time>.md``) and the alias moves
  (``aliases.move_aliases``): on a (forced) pass ``@previous_champion`` <- old champion, ``@champion`` <- the
  version; ``@challenger`` <- the newest evaluated version. A dry run writes the tags and the table, moves no alias.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from mlflow import MlflowClient

from components.config import PipelineConfig
from components.registry.aliases import (
    UNCHECKED,
    AliasChange,
    StaleChampionError,
    move_aliases,
    read_aliases,
    stamp,
)
from components.registry.decision import GateDecision, decide, render_markdown
from components.registry.store import (
    check_tracking_server,
    clear_unreachable_errors,
    client_for,
    lock_path_for,
    resolve_tracking_uri,
)
from components.registry.versions import get_version, model_version_uri, tag_version

log = logging.getLogger(__name__)


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
        mv = get_version(client, name, version)
        stale = None
        if dry_run:
            state = read_aliases(client, name)
            change = AliasChange(name, version, state, state, decision.forced)
        else:
            try:
                change = move_aliases(client, name, lock, champion=version if decision.promote else None,
                                        expected_champion=champion_compared if decision.promote else UNCHECKED,
                                        challenger=version if decision.evaluated else None)
            except StaleChampionError as exc:
                stale, change = str(exc), None
        promoted = change is not None and change.after.champion == version and decision.promote and not dry_run
        _record(client, name, mv, decision, window=window, decided_at=stamp(decided_at), dry_run=dry_run,
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
    tag_version(client, name, mv.version, {prefix + k: v for k, v in tags.items()})
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
        get_version(client, name, version)
    scores: dict[str, tuple[dict | None, str | None]] = {version: _evaluate(evaluate, model_version_uri(name, version))}
    for attempt in range(1, max_attempts + 1):
        with clear_unreachable_errors(uri):
            champion = read_aliases(client, name).champion
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
                             window=window, decided_at=stamp(decided_at))
        promoted = decision.promote and not dry_run and change.after.champion == version
        return GateResult(name, version, window, decision, champion, change, promoted, dry_run, attempt, md)
    raise AssertionError("unreachable: the loop returns or raises")
