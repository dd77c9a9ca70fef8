"""The gate's decision (docs/design.md §7), pure: challenger and champion AUCs ``{task: auc}`` + rules ->
:class:`GateDecision` with one row per gated task, and its markdown table.

A task passes when ``auc >= floor`` and ``auc >= champion_auc - max_regression`` (no champion: floors only; a
task the champion was trained without: its floor only). NaN/inf, an AUC outside [0, 1], a missing task, a
failed challenger evaluation (``None``) and a failed or incomplete champion evaluation never pass.
``force=True`` promotes anyway but the verdict stays honest: ``passed`` is False, ``forced`` True.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from components.config import PromotionConfig, TaskRule


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

