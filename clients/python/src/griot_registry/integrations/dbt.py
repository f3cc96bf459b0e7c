"""``griot-dbt``: record dbt invocations and their tests in griot-registry.

dbt has no Python hook that sees a whole invocation (``on-run-end`` hooks are
SQL run by the adapter), but every command leaves two artifacts behind:
``target/run_results.json`` (what ran, how it ended, how long it took) and
``target/manifest.json`` (each node's ``meta``, the model a test is attached
to, the column it checks). Recording from them works the same whether dbt
ran a moment ago through this command, in another process, or in a CI job
that uploads its ``target/`` folder.

Usage::

    griot-dbt build --select orders+          # run dbt in-process, then record
    dbt build; griot-dbt record                # record what dbt left in target/

What is recorded, per invocation:

* one **run** per contract the invocation touched (usually exactly one),
  backfilled as final: ``completed`` when each of its nodes ended in
  ``success``, ``pass``, ``warn`` or ``no-op``, ``failed`` otherwise, with
  ``started_at``/``completed_at`` from the artifacts and metadata: the dbt
  command, version, invocation id, counts per status and per resource type,
  the elapsed time and the nodes that did not succeed;
* one **validation** per test (data test or unit test), linked to that run:
  ``pass`` -> ``passed``, ``fail``/``error`` -> ``failed``, ``warn`` ->
  ``warning``, ``skipped`` -> ``skipped``; the test's name is the error code,
  its column the path, its failure count the ``row_count``, its execution
  time ``metrics.duration_ms``.

A node's contract is ``meta.griot_contract_id`` on the node, else (for a
test) on the model, seed, snapshot or source it tests, else ``--contract-id``
or ``GRIOT_CONTRACT_ID``, else the dbt project's name. The registry requires
a validation and its run to share a contract, so a test whose contract
differs from the rest of the invocation gets a run of its own contract (same
``pipeline_id``: the invocation id) rather than a validation cut off from any
run.

Recording is idempotent: each run's ``Idempotency-Key`` comes from the
invocation id and the contract, an earlier run of the same invocation is
looked up before creating one (keys expire after 24 hours on the server), and
a test whose ``dbt_unique_id`` the run already holds is not recorded again.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import re
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Set, Tuple

from ..types import Run, RunListItem, Validation
from ._common import Reporter, Settings, compact, logger, stable_key

__all__ = ["main", "record", "load_invocation", "Invocation", "ArtifactsError"]

#: The ``meta`` key naming a node's contract.
META_KEY = "griot_contract_id"
#: dbt commands ``griot-dbt`` runs in-process and records.
DBT_COMMANDS = ("build", "run", "test", "seed", "snapshot")
#: Node statuses that leave a run ``completed``. ``warn`` is here because dbt
#: itself treats a warning as success (exit code 0).
OK_STATUSES = frozenset({"success", "pass", "warn", "no-op"})
TEST_RESOURCE_TYPES = frozenset({"test", "unit_test"})
VALIDATION_STATUS = {
    "pass": "passed",
    "fail": "failed",
    "error": "failed",
    "warn": "warning",
    "skipped": "skipped",
}
#: At most this many failing nodes are listed in a run's metadata.
MAX_LISTED_FAILURES = 20
MAX_MESSAGE_CHARS = 2000

EXIT_OK = 0
#: Our own usage errors (argparse's convention).
EXIT_USAGE = 2
#: dbt's artifacts are missing or unreadable.
EXIT_NO_ARTIFACTS = 3
#: dbt is not installed next to griot-dbt.
EXIT_NO_DBT = 4


class ArtifactsError(Exception):
    """dbt's artifacts cannot be used: missing, unreadable or not dbt's."""


# -- reading the artifacts ----------------------------------------------------


@dataclass
class Node:
    """One result of the invocation, joined with what the manifest says
    about its node."""

    unique_id: str
    resource_type: str
    name: str
    status: str
    contract_id: str
    message: Optional[str]
    failures: Optional[int]
    execution_time: float
    completed_at: Optional[str]
    column: Optional[str] = None
    test_name: Optional[str] = None
    attached_to: Optional[str] = None
    severity: Optional[str] = None

    @property
    def is_test(self) -> bool:
        return self.resource_type in TEST_RESOURCE_TYPES


@dataclass
class Invocation:
    """What one dbt invocation left in its artifacts."""

    invocation_id: str
    project_name: str
    command: Optional[str]
    invocation_command: Optional[str]
    dbt_version: Optional[str]
    adapter_type: Optional[str]
    started_at: str
    completed_at: str
    elapsed_seconds: Optional[float]
    default_contract_id: str
    nodes: List[Node] = field(default_factory=list)
    #: Why dbt stopped before running any node (a parse or connection
    #: error), when it wrote no run_results.json.
    error: Optional[str] = None

    def contracts(self) -> List[str]:
        """The contracts to create runs for: each one a node reports to, or
        the default when the invocation ran no node at all."""
        seen: Dict[str, None] = {}
        for node in self.nodes:
            seen.setdefault(node.contract_id, None)
        return list(seen) or [self.default_contract_id]


def _read_json(path: Path) -> Dict[str, Any]:
    try:
        with path.open(encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise ArtifactsError(
            f"no dbt artifacts at {path}: run a dbt command first, or point "
            "--project-dir/--target-path at the folder dbt wrote to"
        ) from None
    except (OSError, ValueError) as error:
        raise ArtifactsError(f"cannot read {path}: {error}") from None
    if not isinstance(data, dict):
        raise ArtifactsError(f"{path} is not a dbt artifact (not a JSON object)")
    return data


_TIMESTAMP = re.compile(
    r"^(?P<base>\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2})(?:\.(?P<frac>\d+))?(?P<tz>Z|[+-]\d{2}:?\d{2})?$"
)


def parse_timestamp(value: Any) -> Optional[datetime]:
    """A dbt timestamp as an aware datetime. Python 3.9's ``fromisoformat``
    takes neither ``Z`` nor other than 3 or 6 fractional digits, which dbt
    may write."""
    if not isinstance(value, str):
        return None
    match = _TIMESTAMP.match(value.strip())
    if match is None:
        return None
    frac = (match.group("frac") or "0")[:6].ljust(6, "0")
    zone = match.group("tz") or "+00:00"
    if zone == "Z":
        zone = "+00:00"
    elif ":" not in zone:
        zone = zone[:3] + ":" + zone[3:]
    try:
        parsed = datetime.fromisoformat(f"{match.group('base').replace(' ', 'T')}.{frac}{zone}")
    except ValueError:
        return None
    return parsed.astimezone(timezone.utc)


def format_timestamp(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _meta(node: Optional[Mapping[str, Any]]) -> Mapping[str, Any]:
    """A node's meta: dbt >= 1.10 keeps it under ``config``, older versions
    at the top level (and still copy it there)."""
    if not node:
        return {}
    merged: Dict[str, Any] = {}
    for meta in (node.get("meta"), (node.get("config") or {}).get("meta")):
        if isinstance(meta, dict):
            merged.update(meta)
    return merged


def _contract_of(node: Optional[Mapping[str, Any]]) -> Optional[str]:
    value = _meta(node).get(META_KEY)
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _manifest_node(manifest: Mapping[str, Any], unique_id: str) -> Optional[Mapping[str, Any]]:
    for section in ("nodes", "unit_tests", "sources", "snapshots", "seeds"):
        nodes = manifest.get(section)
        if isinstance(nodes, dict) and isinstance(nodes.get(unique_id), dict):
            found: Mapping[str, Any] = nodes[unique_id]
            return found
    return None


def _tested_node(manifest: Mapping[str, Any], node: Mapping[str, Any]) -> Optional[str]:
    """The node a test checks: the one it is attached to, else its only parent."""
    attached = node.get("attached_node")
    if isinstance(attached, str) and attached:
        return attached
    model = node.get("model")  # unit tests name their model
    if isinstance(model, str) and model:
        parents = (node.get("depends_on") or {}).get("nodes") or []
        for parent in parents:
            if isinstance(parent, str) and parent.split(".")[-1] == model:
                return parent
    parents = (node.get("depends_on") or {}).get("nodes") or []
    if len(parents) == 1 and isinstance(parents[0], str):
        return str(parents[0])
    return None


def _execute_completed_at(result: Mapping[str, Any]) -> Optional[str]:
    for step in result.get("timing") or []:
        if isinstance(step, dict) and step.get("name") == "execute" and step.get("completed_at"):
            parsed = parse_timestamp(step["completed_at"])
            if parsed is not None:
                return format_timestamp(parsed)
    return None


def _int_or_none(value: Any) -> Optional[int]:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _node_from_result(
    result: Mapping[str, Any], manifest: Mapping[str, Any], default_contract: str
) -> Node:
    unique_id = str(result.get("unique_id") or "")
    manifest_node = _manifest_node(manifest, unique_id)
    resource_type = (manifest_node or {}).get("resource_type") or unique_id.split(".")[0]
    name = (manifest_node or {}).get("name") or unique_id.split(".")[-1]
    contract = _contract_of(manifest_node)
    column: Optional[str] = None
    test_name: Optional[str] = None
    attached: Optional[str] = None
    severity: Optional[str] = None
    if resource_type in TEST_RESOURCE_TYPES:
        node = manifest_node or {}
        attached = _tested_node(manifest, node) if manifest_node else None
        if contract is None and attached is not None:
            contract = _contract_of(_manifest_node(manifest, attached))
        test_metadata = node.get("test_metadata") or {}
        generic = test_metadata.get("name")
        if generic:
            namespace = test_metadata.get("namespace")
            test_name = f"{namespace}.{generic}" if namespace else str(generic)
        else:  # a singular test or a unit test: its own name says what it checks
            test_name = str(name)
        column_value = node.get("column_name") or (test_metadata.get("kwargs") or {}).get(
            "column_name"
        )
        column = str(column_value) if column_value else None
        severity_value = (node.get("config") or {}).get("severity")
        severity = str(severity_value).lower() if severity_value else None
    message = result.get("message")
    execution_time = result.get("execution_time")
    return Node(
        unique_id=unique_id,
        resource_type=str(resource_type),
        name=str(name),
        status=str(result.get("status") or "unknown").lower(),
        contract_id=contract or default_contract,
        message=str(message)[:MAX_MESSAGE_CHARS] if message else None,
        failures=_int_or_none(result.get("failures")),
        execution_time=float(execution_time) if isinstance(execution_time, (int, float)) else 0.0,
        completed_at=_execute_completed_at(result),
        column=column,
        test_name=test_name,
        attached_to=attached,
        severity=severity,
    )


def load_invocation(target_path: Path, contract_id: Optional[str] = None) -> Invocation:
    """Read ``run_results.json`` and ``manifest.json`` from ``target_path``.

    ``contract_id`` is the contract for nodes whose ``meta`` names none; when
    ``None``, the dbt project's name. Raises :class:`ArtifactsError` when
    ``run_results.json`` is missing or unreadable; a missing manifest only
    loses the ``meta`` contracts and test details (with a warning).
    """
    run_results = _read_json(target_path / "run_results.json")
    metadata = run_results.get("metadata") or {}
    invocation_id = metadata.get("invocation_id")
    results = run_results.get("results")
    if not invocation_id or not isinstance(results, list):
        raise ArtifactsError(
            f"{target_path / 'run_results.json'} is not a dbt run_results artifact "
            "(no invocation_id or results)"
        )
    try:
        manifest = _read_json(target_path / "manifest.json")
    except ArtifactsError as error:
        logger.warning("griot-dbt: %s; tests are recorded without their meta contracts", error)
        manifest = {}
    manifest_meta = manifest.get("metadata") or {}
    args = run_results.get("args") or {}
    project_name = str(
        manifest_meta.get("project_name")
        or Path(str(args.get("project_dir") or target_path.parent)).resolve().name
    )

    completed = parse_timestamp(metadata.get("generated_at")) or datetime.now(timezone.utc)
    elapsed = run_results.get("elapsed_time")
    elapsed_seconds = float(elapsed) if isinstance(elapsed, (int, float)) else None
    started = parse_timestamp(metadata.get("invocation_started_at"))
    if started is None and manifest_meta.get("invocation_id") == invocation_id:
        started = parse_timestamp(manifest_meta.get("run_started_at"))
    if started is None:
        started = completed - timedelta(seconds=elapsed_seconds or 0.0)
    if started > completed:
        started = completed

    default_contract = contract_id or project_name
    invocation = Invocation(
        invocation_id=str(invocation_id),
        project_name=project_name,
        command=str(args["which"]) if args.get("which") else None,
        invocation_command=str(args["invocation_command"]) if args.get("invocation_command") else None,
        dbt_version=metadata.get("dbt_version") or manifest_meta.get("dbt_version"),
        adapter_type=manifest_meta.get("adapter_type"),
        started_at=format_timestamp(started),
        completed_at=format_timestamp(completed),
        elapsed_seconds=elapsed_seconds,
        default_contract_id=default_contract,
    )
    for result in results:
        if isinstance(result, dict) and result.get("unique_id"):
            invocation.nodes.append(_node_from_result(result, manifest, default_contract))
    return invocation


# -- what to send ---------------------------------------------------------------


def _counts(values: Sequence[str]) -> Dict[str, int]:
    counts: Dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return dict(sorted(counts.items()))


def run_fields(invocation: Invocation, contract_id: str) -> Dict[str, Any]:
    """The create-run body for one contract's share of the invocation.

    Built from the artifacts alone, so recording the same invocation again
    sends the same body (the registry refuses a reused ``Idempotency-Key``
    with another body)."""
    nodes = [node for node in invocation.nodes if node.contract_id == contract_id]
    failed = [node for node in nodes if node.status not in OK_STATUSES]
    metadata = compact(
        {
            "source": "griot-dbt",
            "dbt_command": invocation.command,
            "dbt_invocation_command": invocation.invocation_command,
            "dbt_version": invocation.dbt_version,
            "dbt_invocation_id": invocation.invocation_id,
            "dbt_project": invocation.project_name,
            "dbt_adapter": invocation.adapter_type,
            "dbt_error": invocation.error,
            "elapsed_seconds": (
                round(invocation.elapsed_seconds, 3)
                if invocation.elapsed_seconds is not None
                else None
            ),
            "nodes": len(nodes),
            "status_counts": _counts([node.status for node in nodes]),
            "resource_counts": _counts([node.resource_type for node in nodes]),
            "failed_nodes": [
                compact({"unique_id": n.unique_id, "status": n.status, "message": n.message})
                for n in failed[:MAX_LISTED_FAILURES]
            ]
            or None,
            # Other contracts' runs of the same invocation share its pipeline_id.
            "dbt_invocation_contracts": (
                invocation.contracts() if len(invocation.contracts()) > 1 else None
            ),
        }
    )
    return {
        "contract_id": contract_id,
        "pipeline_name": invocation.project_name,
        "pipeline_id": invocation.invocation_id,
        "status": "failed" if failed or invocation.error else "completed",
        "metadata": metadata,
        "started_at": invocation.started_at,
        "completed_at": invocation.completed_at,
    }


def validation_fields(invocation: Invocation, node: Node, run_id: Optional[str]) -> Dict[str, Any]:
    """The record-validation body for one test result."""
    status = VALIDATION_STATUS.get(node.status, "failed")
    code = node.test_name or node.name
    errors: List[Dict[str, Any]] = []
    warnings: List[Dict[str, Any]] = []
    if status == "failed":
        default = f"{node.name} ended with status {node.status}"
        errors.append(
            compact(
                {
                    "code": code,
                    "message": node.message or default,
                    "path": node.column,
                    "row_count": node.failures if node.status == "fail" else None,
                }
            )
        )
    elif status == "warning":
        warnings.append({"code": code, "message": node.message or f"{node.name} warned"})
    metrics = compact(
        {
            "duration_ms": int(round(node.execution_time * 1000)),
            "rows_failed": node.failures if status in ("failed", "warning") else None,
        }
    )
    metadata = compact(
        {
            "source": "griot-dbt",
            "dbt_unique_id": node.unique_id,
            "dbt_test": node.name,
            "dbt_status": node.status,
            "dbt_resource_type": node.resource_type,
            "dbt_tested_node": node.attached_to,
            "dbt_column": node.column,
            "dbt_severity": node.severity,
            "dbt_message": node.message if status in ("passed", "skipped") else None,
            "dbt_invocation_id": invocation.invocation_id,
        }
    )
    return compact(
        {
            "contract_id": node.contract_id,
            "status": status,
            "run_id": run_id,
            "errors": errors,
            "warnings": warnings,
            "metrics": metrics,
            "metadata": metadata,
            "recorded_at": node.completed_at or invocation.completed_at,
        }
    )


# -- recording --------------------------------------------------------------------


class _Reporter(Reporter):
    """The shared reporter plus the two reads recording needs to stay
    idempotent; like every Reporter call they return ``None`` on failure."""

    def find_runs(
        self, contract_id: str, pipeline_name: str, around: datetime
    ) -> Optional[List[RunListItem]]:
        return self._call(
            "look up earlier runs",
            lambda c: c.list_runs(
                contract_id=contract_id,
                pipeline_name=pipeline_name,
                start_date=around - timedelta(seconds=1),
                end_date=around + timedelta(seconds=1),
                limit=100,
            )["items"],
        )

    def validations_of(self, run_id: str) -> Optional[List[Validation]]:
        return self._call(
            f"list the validations of run {run_id}",
            lambda c: list(c.iter_validations(run_id=run_id, page_size=500)),
        )


@dataclass
class Recorded:
    """What one contract's share of an invocation came to."""

    contract_id: str
    run_id: Optional[str]
    status: str
    new_validations: int = 0
    known_validations: int = 0
    failed_validations: int = 0
    reused_run: bool = False


def _existing_run(reporter: _Reporter, fields: Mapping[str, Any]) -> Optional[RunListItem]:
    started = parse_timestamp(fields["started_at"])
    if started is None:
        return None
    items = reporter.find_runs(fields["contract_id"], fields["pipeline_name"], started)
    for item in items or []:
        if (item.get("metadata") or {}).get("dbt_invocation_id") == fields["pipeline_id"]:
            return item
    return None


def _record_contract(
    reporter: _Reporter, invocation: Invocation, contract_id: str
) -> Recorded:
    fields = run_fields(invocation, contract_id)
    outcome = Recorded(contract_id=contract_id, run_id=None, status=fields["status"])
    # An earlier recording may be older than the server keeps idempotency
    # keys, or may have sent another body (an older griot-dbt): look first.
    existing = _existing_run(reporter, fields)
    has_validations: bool
    if existing is not None:
        outcome.run_id = existing["id"]
        outcome.reused_run = True
        has_validations = existing["validation_summary"]["total"] > 0
    else:
        run: Optional[Run] = reporter.create_run(
            **fields,
            idempotency_key=stable_key("dbt", invocation.invocation_id, contract_id),
        )
        if run is None:
            return outcome
        outcome.run_id = run["id"]
        # A replayed create answers with the run as it is now, validations
        # included: anything there came from an earlier recording.
        has_validations = bool(run.get("validations"))

    known: Set[str] = set()
    if has_validations:
        listed = reporter.validations_of(outcome.run_id)
        if listed is None:
            # Recording blind could duplicate every test: better to skip.
            logger.warning(
                "griot-dbt: run %s already has validations that could not be listed; "
                "not recording its tests again",
                outcome.run_id,
            )
            return outcome
        for validation in listed:
            unique_id = (validation.get("metadata") or {}).get("dbt_unique_id")
            if isinstance(unique_id, str):
                known.add(unique_id)

    for node in invocation.nodes:
        if not node.is_test or node.contract_id != contract_id:
            continue
        if node.unique_id in known:
            outcome.known_validations += 1
            continue
        if reporter.record_validation(**validation_fields(invocation, node, outcome.run_id)):
            outcome.new_validations += 1
        else:
            outcome.failed_validations += 1
    return outcome


def record(invocation: Invocation, settings: Optional[Settings] = None) -> List[Recorded]:
    """Record an invocation: one run per contract, one validation per test.

    Never raises for registry trouble: what could not be recorded has
    ``run_id`` ``None`` or counts in ``failed_validations``, and a warning
    was logged.
    """
    reporter = _Reporter(settings or Settings.from_env())
    try:
        return [_record_contract(reporter, invocation, c) for c in invocation.contracts()]
    finally:
        reporter.close()


# -- the command line ---------------------------------------------------------------


def _project_dir(explicit: Optional[str]) -> Path:
    return Path(explicit or os.environ.get("DBT_PROJECT_DIR") or ".").expanduser()


def _configured_target_path(project_dir: Path) -> Optional[str]:
    """``target-path`` from ``dbt_project.yml``, if dbt's YAML library is
    here to read it (it is wherever dbt is)."""
    value = _project_setting(project_dir, "target-path")
    return value if value and "{{" not in value else None


def _project_setting(project_dir: Path, key: str) -> Optional[str]:
    """A top-level string of ``dbt_project.yml``, read with dbt's own YAML
    library (there wherever dbt is); ``None`` when it cannot be read."""
    project_file = project_dir / "dbt_project.yml"
    if not project_file.is_file():
        return None
    try:
        yaml: Any = importlib.import_module("yaml")
        data = yaml.safe_load(project_file.read_text(encoding="utf-8"))
    except Exception:  # no PyYAML, or a file dbt itself would refuse
        return None
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def target_dir(project_dir: Optional[str], target_path: Optional[str]) -> Path:
    """Where dbt wrote its artifacts, resolved as dbt does: ``--target-path``,
    else ``DBT_TARGET_PATH``, else ``target-path`` in ``dbt_project.yml``,
    else ``target``; relative paths are relative to the project folder."""
    project = _project_dir(project_dir)
    chosen = target_path or os.environ.get("DBT_TARGET_PATH") or _configured_target_path(project)
    path = Path(chosen or "target").expanduser()
    return path if path.is_absolute() else project / path


def _report(outcomes: Sequence[Recorded], invocation: Invocation) -> None:
    missed = [outcome.contract_id for outcome in outcomes if outcome.run_id is None]
    if missed:
        print(
            f"griot-dbt: invocation {invocation.invocation_id} was not recorded for "
            f"contract(s) {', '.join(missed)} (see the warning above)",
            file=sys.stderr,
        )
    for outcome in outcomes:
        if outcome.run_id is None:
            continue
        parts = [f"{outcome.new_validations} new validation(s)"]
        if outcome.known_validations:
            parts.append(f"{outcome.known_validations} already recorded")
        if outcome.failed_validations:
            parts.append(f"{outcome.failed_validations} not recorded")
        print(
            f"griot-dbt: run {outcome.run_id} ({outcome.status}) for contract "
            f"{outcome.contract_id!r}"
            f"{' (already recorded)' if outcome.reused_run else ''}: {', '.join(parts)}",
            file=sys.stderr,
        )


def _record_from(target: Path, contract_id: Optional[str]) -> int:
    try:
        invocation = load_invocation(target, contract_id)
    except ArtifactsError as error:
        print(f"griot-dbt: {error}", file=sys.stderr)
        return EXIT_NO_ARTIFACTS
    _report(record(invocation), invocation)
    return EXIT_OK


def _split_dbt_args(args: Sequence[str]) -> Tuple[Optional[str], Optional[str]]:
    """``--project-dir`` and ``--target-path`` as given to dbt, if given."""
    found: Dict[str, Optional[str]] = {"--project-dir": None, "--target-path": None}
    for index, arg in enumerate(args):
        for flag in found:
            if arg == flag and index + 1 < len(args):
                found[flag] = args[index + 1]
            elif arg.startswith(flag + "="):
                found[flag] = arg[len(flag) + 1 :]
    return found["--project-dir"], found["--target-path"]


def _exit_code(result: Any) -> int:
    """dbt's own exit code for a ``dbtRunnerResult``, as its CLI computes it:
    0 success, 1 a node failed, 2 dbt itself failed."""
    if getattr(result, "success", False):
        return 0
    return 1 if getattr(result, "exception", None) is None else 2


def _run_dbt(command: str, dbt_args: Sequence[str], contract_id: Optional[str]) -> int:
    try:
        runner_module: Any = importlib.import_module("dbt.cli.main")
    except ImportError as error:
        print(
            f"griot-dbt: dbt is not installed here ({error}); install dbt-core and an "
            'adapter, or `pip install "griot-registry[dbt]"`',
            file=sys.stderr,
        )
        return EXIT_NO_DBT
    project_dir, target_path = _split_dbt_args(dbt_args)
    target = target_dir(project_dir, target_path)
    run_results = target / "run_results.json"
    started = datetime.now(timezone.utc)
    result = runner_module.dbtRunner().invoke([command, *dbt_args])
    code = _exit_code(result)
    try:
        fresh = (
            run_results.is_file()
            and run_results.stat().st_mtime >= started.timestamp() - 1
        )
        if fresh:
            invocation = load_invocation(target, contract_id)
        elif code == 0:
            print(
                f"griot-dbt: dbt wrote no new {run_results} (--no-write-json?); "
                "nothing recorded",
                file=sys.stderr,
            )
            return code
        else:
            invocation = _stopped_invocation(
                command, dbt_args, _project_dir(project_dir), started, result, contract_id
            )
        _report(record(invocation), invocation)
    except Exception as error:  # recording must never change dbt's outcome
        logger.warning("griot-dbt: could not record this invocation: %s", error)
    return code


def _stopped_invocation(
    command: str,
    dbt_args: Sequence[str],
    project_dir: Path,
    started: datetime,
    result: Any,
    contract_id: Optional[str],
) -> Invocation:
    """An invocation dbt ended before running any node (a parse, profile or
    connection error) and so before writing run_results.json: still a
    failed run, so a broken project does not look like a quiet day."""
    invocation_id: Optional[str] = None
    dbt_version: Optional[str] = None
    try:
        invocation_module: Any = importlib.import_module("dbt_common.invocation")
        invocation_id = str(invocation_module.get_invocation_id())
        version_module: Any = importlib.import_module("dbt.version")
        dbt_version = str(version_module.__version__)
    except Exception:  # older or newer dbt: make do without
        pass
    project_name = _project_setting(project_dir, "name") or project_dir.resolve().name
    exception = getattr(result, "exception", None)
    error = f"{type(exception).__name__}: {exception}" if exception else "dbt failed"
    return Invocation(
        invocation_id=invocation_id or stable_key("dbt-stopped", started.isoformat(), command),
        project_name=project_name,
        command=command,
        invocation_command=" ".join(["dbt", command, *dbt_args]),
        dbt_version=dbt_version,
        adapter_type=None,
        started_at=format_timestamp(started),
        completed_at=format_timestamp(datetime.now(timezone.utc)),
        elapsed_seconds=None,
        default_contract_id=contract_id or project_name,
        error=error[:MAX_MESSAGE_CHARS],
    )


HELP = """\
Record dbt invocations and their tests in griot-registry.

commands:
  record [--project-dir DIR] [--target-path PATH] [--contract-id ID]
                     record the last dbt invocation from its artifacts
                     (run_results.json and manifest.json in the target folder)
  build|run|test|seed|snapshot [dbt args...]
                     run that dbt command in-process with the arguments as
                     given, record it, and exit with dbt's own exit code

  griot-dbt's own options go before the command; everything after a dbt
  command goes to dbt unchanged: griot-dbt --contract-id orders build -s orders+

what is recorded:
  One run per invocation and contract (pipeline_name: the dbt project,
  pipeline_id: the invocation id), completed when every node succeeded,
  passed or warned and failed otherwise, and one validation per test linked
  to it (pass/fail/warn/skipped/error -> passed/failed/warning/skipped/failed;
  error code: the test's name; path: its column; row_count: its failures).
  Recording an invocation again adds nothing.

contracts:
  A node reports to meta.griot_contract_id on itself or, for a test, on the
  model it tests; else --contract-id, GRIOT_CONTRACT_ID, else the project name.

environment:
  GRIOT_URL            the registry (default http://127.0.0.1:8000)
  GRIOT_API_KEY        a key with the write scope
  GRIOT_CONTRACT_ID    the default contract
  GRIOT_TIMEOUT_SECONDS  the most one request may take (default 5)

exit codes:
  dbt commands: dbt's own (0 success, 1 a node failed, 2 dbt error); the
  registry being unreachable never changes it, it only warns.
  record: 0 (also when the registry is unreachable: it warns), 2 bad
  arguments, 3 no readable artifacts. 4: dbt is not installed.
"""


def _record_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="griot-dbt record",
        description="Record the last dbt invocation from the artifacts it left "
        "(run_results.json and manifest.json).",
    )
    parser.add_argument(
        "--project-dir",
        metavar="DIR",
        help="the dbt project (default: DBT_PROJECT_DIR, else the current folder)",
    )
    parser.add_argument(
        "--target-path",
        metavar="PATH",
        help="where dbt wrote its artifacts, relative to the project "
        "(default: DBT_TARGET_PATH, else target-path in dbt_project.yml, else target)",
    )
    parser.add_argument(
        "--contract-id",
        metavar="ID",
        help="contract for nodes without meta.griot_contract_id "
        "(default: GRIOT_CONTRACT_ID, else the dbt project's name)",
    )
    return parser


def _global_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="griot-dbt",
        usage="griot-dbt [--contract-id ID] {record,build,run,test,seed,snapshot} ...",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--contract-id", metavar="ID", help="the default contract (see contracts above)"
    )
    return parser


def _setup_logging() -> None:
    """Our warnings go to stderr even when dbt, running in this process,
    has configured logging its own way."""
    package_logger = logging.getLogger("griot_registry")
    if not any(getattr(h, "_griot_dbt", False) for h in package_logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        setattr(handler, "_griot_dbt", True)
        package_logger.addHandler(handler)
    package_logger.setLevel(logging.INFO)
    package_logger.propagate = False


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The ``griot-dbt`` command. Returns (as a console script: exits with)
    the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    # griot-dbt's own options come before the command; everything after a
    # dbt command belongs to dbt, untouched.
    split = next((i for i, arg in enumerate(args) if not arg.startswith("-")), len(args))
    if split > 0 and args[split - 1] == "--contract-id" and split < len(args):
        split = next(
            (i for i, arg in enumerate(args) if i > split and not arg.startswith("-")),
            len(args),
        )
    options = _global_parser().parse_args(args[:split])
    if split == len(args):
        _global_parser().print_help(sys.stderr)
        return EXIT_USAGE
    command, rest = args[split], args[split + 1 :]
    _setup_logging()
    if command == "record":
        record_options = _record_parser().parse_args(rest)
        contract = record_options.contract_id or options.contract_id
        return _record_from(
            target_dir(record_options.project_dir, record_options.target_path),
            contract or Settings.from_env().contract_id,
        )
    if command in DBT_COMMANDS:
        return _run_dbt(command, rest, options.contract_id or Settings.from_env().contract_id)
    print(
        f"griot-dbt: unknown command {command!r}; expected record or one of "
        f"{', '.join(DBT_COMMANDS)} (griot-dbt --help)",
        file=sys.stderr,
    )
    return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
