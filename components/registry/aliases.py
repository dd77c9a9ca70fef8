"""The registry's aliases: ``@champion``, ``@previous_champion`` and ``@challenger``, read and moved under the
registry lock, and the operators' manual moves :func:`promote` and :func:`rollback` (docs/design.md §7).

Concurrency. MLflow aliases are single-valued (an alias names exactly one version), so two champions cannot
exist; what can go wrong is a lost update (two gates both read champion v5, both write previous_champion=v5)
or promoting on a stale comparison. Every alias read-check-write (:func:`move_aliases`) runs under an exclusive
``flock`` on the registry lock file (beside the sqlite db, else ``<work_dir>/locks/``), and re-checks under the
lock that ``@champion`` is still the version the decision was compared with (``StaleChampionError``). After
the writes the aliases are read back; a mismatch (a writer that bypassed the lock: the UI, another host)
raises ``ConcurrentAliasUpdateError``. With a remote server used from several hosts, serialise gates with an
Airflow pool of one slot: the file lock only covers one host.
"""

from __future__ import annotations

import getpass
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from components.config import PipelineConfig
from components.registry.store import (
    check_tracking_server,
    clear_unreachable_errors,
    client_for,
    exclusive_lock,
    lock_path_for,
    resolve_tracking_uri,
)
from components.registry.versions import get_version, tag_version

log = logging.getLogger(__name__)

CHAMPION, PREVIOUS_CHAMPION, CHALLENGER = "champion", "previous_champion", "challenger"
UNCHECKED = object()  # move_aliases(expected_champion=UNCHECKED): move whatever the champion is now


class StaleChampionError(RuntimeError):
    """``@champion`` moved between the evaluation and the alias update; the decision must be re-made."""


class ConcurrentAliasUpdateError(RuntimeError):
    """Aliases read back after a move differ from what was written: someone bypassed the registry lock."""


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


def stamp(at: datetime | str) -> str:
    """A time as written in tags: ISO 8601 for a datetime, a string as given."""
    return at.isoformat() if isinstance(at, datetime) else str(at)


def read_aliases(client: MlflowClient, name: str) -> AliasState:
    """The aliases of registered model ``name`` (it must exist)."""
    a = {k: str(v) for k, v in client.get_registered_model(name).aliases.items()}
    return AliasState(a.get(CHAMPION), a.get(PREVIOUS_CHAMPION), a.get(CHALLENGER))


def current_aliases(config: PipelineConfig) -> AliasState:
    """The registered model's aliases now (all None when the model is not registered yet)."""
    uri = resolve_tracking_uri(config)
    check_tracking_server(uri)
    name = config.promotion.registered_model_name
    with clear_unreachable_errors(uri):
        try:
            return read_aliases(client_for(uri), name)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            return AliasState(None, None, None)


def move_aliases(client: MlflowClient, name: str, lock: str, *, champion: str | None = None,
                 expected_champion: object = UNCHECKED, challenger: str | None = None) -> AliasChange:
    """Under the registry lock: check ``@champion`` is ``expected_champion``, move ``@champion`` to ``champion``
    (old one -> ``@previous_champion``), ``@challenger`` to ``challenger`` if it is newer; read back and verify."""
    champion = None if champion is None else str(champion)
    challenger = None if challenger is None else str(challenger)
    with exclusive_lock(lock):
        before = read_aliases(client, name)
        if expected_champion is not UNCHECKED and before.champion != expected_champion:
            raise StaleChampionError(f"@{CHAMPION} of {name} moved from {expected_champion} to {before.champion} "
                                     "since the evaluation; the comparison must be re-made")
        if champion is not None and champion != before.champion:
            if before.champion is not None:  # previous first: a crash in between leaves a valid rollback target
                client.set_registered_model_alias(name, PREVIOUS_CHAMPION, before.champion)
            client.set_registered_model_alias(name, CHAMPION, champion)
        if challenger is not None and (before.challenger is None or int(challenger) >= int(before.challenger)):
            client.set_registered_model_alias(name, CHALLENGER, challenger)
        after = read_aliases(client, name)
    moved = champion is not None and champion != before.champion
    expect_prev = before.champion if moved and before.champion is not None else before.previous_champion
    if (champion is not None and after.champion != champion) or after.previous_champion != expect_prev:
        raise ConcurrentAliasUpdateError(
            f"aliases of {name} changed under the registry lock by another writer: wrote champion={champion}, "
            f"previous_champion={expect_prev}; read back {after}. Check the registry and re-run")
    return AliasChange(name, champion or before.champion or "", before, after)


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
        mv = get_version(client, name, version)
        gate_passed = mv.tags.get("gate.passed")
        if gate_passed != "true" and not force:
            raise ValueError(f"{name} version {mv.version} has no passing gate decision (gate.passed="
                             f"{gate_passed or 'missing'}); run the gate, or force it with a reason")
        version = str(mv.version)
        change = move_aliases(client, name, str(lock_path_for(uri, config.data.work_dir)), champion=version)
        tag_version(client, name, version, {
            "promote.at": stamp(at or datetime.now(UTC)), "promote.by": actor or getpass.getuser(),
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
        state = read_aliases(client, name)
        target = str(to_version) if to_version is not None else state.previous_champion
        if target is None:
            raise ValueError(f"{name} has no @{PREVIOUS_CHAMPION} to roll back to; give a version (--to V)")
        target = str(get_version(client, name, target).version)
        if target == state.champion:
            raise ValueError(f"{name} version {target} is already @{CHAMPION}; nothing to roll back")
        change = move_aliases(client, name, str(lock_path_for(uri, config.data.work_dir)), champion=target,
                                expected_champion=state.champion)
        tag_version(client, name, target, {
            "rollback.at": stamp(at or datetime.now(UTC)), "rollback.by": actor or getpass.getuser(),
            "rollback.reason": reason or "(none)", "rollback.from_version": state.champion or "none"})
    log.info("rolled %s @champion back from %s to %s", name, state.champion, target)
    return change
