"""The run lifecycle, driven through the client that openapi-python-client
generated from our spec (``griot_registry_client``), against a live server.

Run by ``test_openapi_generators.py`` in the generator's venv with the
generated package on PYTHONPATH, and type-checked there with ``mypy --strict``:
the types are half of what a generated client promises, so a spec that makes
them wrong (a read demanding an ``AuthenticatedClient``, a date filter that
only takes a datetime) must fail here even when the request would work.

Usage: ``python python_flow.py REPORT.json`` with GRIOT_URL, GRIOT_API_KEY and
GRIOT_CONTRACT_ID set. Every step adds what it saw to the report, which is
written even when a later step fails, so the tests can tell which step broke.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
import uuid
from typing import Any, Dict, Type, TypeVar

from griot_registry_client import AuthenticatedClient, Client
from griot_registry_client.api.runs import create_run, get_run, list_runs, update_run
from griot_registry_client.api.validations import get_validation_stats, record_validation
from griot_registry_client.models import (
    CreateRunRequest,
    CreateValidationRequest,
    Error,
    ErrorCode,
    Granularity,
    Run,
    RunPage,
    RunStatus,
    UpdateRunRequest,
    Validation,
    ValidationIssue,
    ValidationStats,
    ValidationStatus,
)

T = TypeVar("T")


def expect(value: object, kind: Type[T], step: str) -> T:
    """Narrow a generated ``parsed`` union to the model the step must get,
    failing with what came instead (an ``Error`` carries the server's reason)."""
    if not isinstance(value, kind):
        shown = value.to_dict() if isinstance(value, Error) else value
        raise AssertionError(f"{step}: expected {kind.__name__}, got {shown!r}")
    return value


def flow(report: Dict[str, Any]) -> None:
    url = os.environ["GRIOT_URL"]
    contract_id = os.environ["GRIOT_CONTRACT_ID"]
    # The registry's key header is X-API-Key with no scheme prefix.
    writer = AuthenticatedClient(
        base_url=url, token=os.environ["GRIOT_API_KEY"], prefix="", auth_header_name="X-API-Key"
    )
    # Reads are open on the server: the generated reads must take a plain Client.
    reader = Client(base_url=url)

    # Create, with an Idempotency-Key, then replay the same request.
    key = str(uuid.uuid4())
    body = CreateRunRequest(
        contract_id=contract_id, pipeline_name="generated-python", status=RunStatus.RUNNING
    )
    created = create_run.sync_detailed(client=writer, body=body, idempotency_key=key)
    run = expect(created.parsed, Run, "create_run")
    report["create"] = {"status_code": int(created.status_code), "id": run.id, "status": run.status.value}
    replay = create_run.sync_detailed(client=writer, body=body, idempotency_key=key)
    replayed = expect(replay.parsed, Run, "create_run replay")
    report["replay"] = {
        "status_code": int(replay.status_code),
        "id": replayed.id,
        "replayed_header": replay.headers.get("idempotent-replayed"),
    }

    # Read it without a key, keep its ETag, and patch with If-Match.
    got = get_run.sync_detailed(run.id, client=reader)
    fetched = expect(got.parsed, Run, "get_run")
    etag = got.headers["etag"]
    report["get"] = {"status_code": int(got.status_code), "version": fetched.version, "etag": etag}
    patched = update_run.sync_detailed(
        run.id,
        client=writer,
        body=UpdateRunRequest.from_dict({"metadata": {"rows_processed": 50000}}),
        if_match=etag,
    )
    after_patch = expect(patched.parsed, Run, "update_run with If-Match")
    report["patch"] = {
        "status_code": int(patched.status_code),
        "version": after_patch.version,
        "metadata": after_patch.metadata.to_dict(),
    }
    # The same If-Match again names a version the run has left: 412, typed.
    stale = update_run.sync_detailed(
        run.id, client=writer, body=UpdateRunRequest.from_dict({"metadata": {"late": True}}), if_match=etag
    )
    stale_error = expect(stale.parsed, Error, "update_run with a stale If-Match")
    report["stale_if_match"] = {"status_code": int(stale.status_code), "code": stale_error.detail.code.value}

    # List by contract, and by a plain date (`start_date=2024-01-15`, as in
    # the README): the spec's "date or date-time" takes a datetime.date.
    listed = list_runs.sync_detailed(client=reader, contract_id=contract_id)
    page = expect(listed.parsed, RunPage, "list_runs")
    started_on = run.started_at.astimezone(datetime.timezone.utc).date()
    dated = list_runs.sync_detailed(client=reader, contract_id=contract_id, start_date=started_on)
    dated_page = expect(dated.parsed, RunPage, "list_runs by start_date")
    report["list"] = {
        "status_code": int(listed.status_code),
        "ids": [item.id for item in page.items],
        "ids_since_start_day": [item.id for item in dated_page.items],
    }

    # A validation linked to the run, and the contract's stats.
    recorded = record_validation.sync_detailed(
        client=writer,
        body=CreateValidationRequest(
            contract_id=contract_id,
            run_id=run.id,
            status=ValidationStatus.FAILED,
            errors=[ValidationIssue(code="null_values", message="email has 12 nulls", path="email", row_count=12)],
        ),
    )
    validation = expect(recorded.parsed, Validation, "record_validation")
    report["validation"] = {
        "status_code": int(recorded.status_code),
        "id": validation.id,
        "run_id": validation.run_id if isinstance(validation.run_id, str) else None,
        "status": validation.status.value,
    }
    stats_response = get_validation_stats.sync_detailed(
        contract_id, client=reader, days=30, granularity=Granularity.DAY
    )
    stats = expect(stats_response.parsed, ValidationStats, "get_validation_stats")
    report["stats"] = {
        "status_code": int(stats_response.status_code),
        "total": stats.totals.total,
        "failed": stats.totals.failed,
        "error_codes": [common.code for common in stats.common_errors],
    }

    # Complete the run, then try to set it back to running: 409, typed.
    done = update_run.sync_detailed(run.id, client=writer, body=UpdateRunRequest(status=RunStatus.COMPLETED))
    report["complete"] = {"status_code": int(done.status_code), "status": expect(done.parsed, Run, "complete").status.value}
    back = update_run.sync_detailed(run.id, client=writer, body=UpdateRunRequest(status=RunStatus.RUNNING))
    conflict = expect(back.parsed, Error, "update_run back to running")
    report["conflict"] = {
        "status_code": int(back.status_code),
        "model": type(conflict).__name__,
        "code": conflict.detail.code.value,
        "is_invalid_transition": conflict.detail.code == ErrorCode.INVALID_TRANSITION,
        "message": conflict.detail.message,
    }


def main() -> int:
    report: Dict[str, Any] = {}
    try:
        flow(report)
    finally:
        with open(sys.argv[1], "w", encoding="utf-8") as out:
            json.dump(report, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
