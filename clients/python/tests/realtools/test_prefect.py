"""The Prefect integration (``griot_registry.integrations.prefect``) with real
Prefect 3.9 in its own venv, against the live registry.

Prefect's local server is slow to start, so one driver process
(``prefect_flows/driver.py``) runs every scenario, in process and under a
real Prefect runner, and writes what Prefect reported to JSON; the tests here
check that against what the registry holds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any, Dict

import pytest

from conftest import Registry, free_port

from .venvs import tool_venv

FLOWS = Path(__file__).resolve().parent / "prefect_flows"
DRIVER_TIMEOUT = 600


def prefect_env(home: Path, **extra: str) -> Dict[str, str]:
    """A local, quiet Prefect: its own home and database, no telemetry,
    nothing from the developer's Prefect profile or settings."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PREFECT_", "GRIOT_")) and key not in ("REGISTRY_URL",)
    }
    env.update(
        {
            "PREFECT_HOME": str(home),
            "PREFECT_PROFILES_PATH": str(home / "profiles.toml"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
            "PREFECT_LOGGING_LEVEL": "WARNING",
            "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
            "PREFECT_LOGGING_TO_API_ENABLED": "false",
            "PREFECT_SERVER_UI_ENABLED": "false",
            "PREFECT_RUNNER_POLL_FREQUENCY": "1",
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


#: The driver's outcome per registry (one per test session), shared with
#: ``tests/test_integration_patterns.py``, which checks the spec's snippet
#: from the same run; a failure is kept too, so it is not retried.
_OUTCOMES: Dict[str, Dict[str, Any]] = {}


def prefect_outcome(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Any]:
    """Run the driver once per test session; the JSON it wrote, with the
    contract ids it used (``contract_id``, ``snippet_contract_id``)."""
    if registry.url not in _OUTCOMES:
        _OUTCOMES[registry.url] = _run_driver(registry, tmp_path_factory)
    data = _OUTCOMES[registry.url]
    if "failure" in data:
        pytest.fail(data["failure"], pytrace=False)
    return data


def _run_driver(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Any]:
    started = time.monotonic()
    try:
        venv = tool_venv("prefect", extras="prefect")
    except RuntimeError as error:
        return {"failure": f"could not build the Prefect venv: {error}"}
    venv_seconds = time.monotonic() - started
    work = tmp_path_factory.mktemp("prefect")
    out = work / "outcome.json"
    contract = f"prefect-{uuid.uuid4().hex[:10]}"
    snippet_contract = f"{contract}-snippet"
    env = prefect_env(
        work / "home",
        GRIOT_URL=registry.url,
        REGISTRY_URL=registry.url,
        GRIOT_API_KEY=registry.api_key,
        GRIOT_CONTRACT_ID=contract,
        GRIOT_SNIPPET_CONTRACT_ID=snippet_contract,
        GRIOT_DOWN_URL=f"http://127.0.0.1:{free_port()}",
    )
    started = time.monotonic()
    try:
        result = subprocess.run(
            [str(venv / "bin" / "python"), str(FLOWS / "driver.py"), str(out)],
            cwd=str(FLOWS),
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=DRIVER_TIMEOUT,
        )
    except subprocess.TimeoutExpired as error:
        return {"failure": f"the Prefect driver did not finish in {DRIVER_TIMEOUT} s:\n{error.stdout!r}\n{error.stderr!r}"}
    seconds = time.monotonic() - started
    data: Dict[str, Any] = json.loads(out.read_text()) if out.exists() else {}
    if result.returncode != 0 or "driver_error" in data:
        return {
            "failure": f"the Prefect driver failed ({result.returncode}):\n{data.get('driver_error', '')}\n"
            f"stdout:\n{result.stdout[-6000:]}\nstderr:\n{result.stderr[-6000:]}"
        }
    data.update(contract_id=contract, snippet_contract_id=snippet_contract)
    data["timings"].update(venv=round(venv_seconds, 3), driver=round(seconds, 3))
    sys.stderr.write(f"\nprefect: {data['timings']}\n")
    return data


@pytest.fixture(scope="module")
def outcome(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Any]:
    return prefect_outcome(registry, tmp_path_factory)


@pytest.fixture(scope="module")
def runs(outcome: Dict[str, Any], registry: Registry) -> Dict[str, Dict[str, Any]]:
    """The registry's runs for the contract, by Prefect flow run id."""
    with registry.client() as client:
        page = client.list_runs(contract_id=outcome["contract_id"], limit=100)
    assert page["total"] == len(page["items"])
    by_flow_run = {str(run["pipeline_id"]): dict(run) for run in page["items"]}
    assert len(by_flow_run) == len(page["items"]), "two registry runs for one flow run"
    return by_flow_run


def run_of(outcome: Dict[str, Any], runs: Dict[str, Dict[str, Any]], scenario: str) -> Dict[str, Any]:
    flow_run = outcome["scenarios"][scenario]
    assert flow_run["flow_run_id"] in runs, f"no registry run for the {scenario} flow run"
    return runs[flow_run["flow_run_id"]]


def assert_common(run: Dict[str, Any], flow_run: Dict[str, Any], outcome: Dict[str, Any], flow_name: str) -> None:
    assert run["pipeline_name"] == flow_name
    assert run["pipeline_id"] == flow_run["flow_run_id"]
    assert run["created_by"] == "bootstrap"
    assert run["completed_at"] is not None
    assert run["heartbeat_deadline"] is None
    metadata = run["metadata"]
    assert metadata["orchestrator"] == "prefect"
    assert metadata["prefect_version"] == outcome["prefect_version"]
    assert metadata["flow_run_name"] == flow_run["flow_run_name"]
    assert metadata["prefect_state"] == flow_run["state_name"] or (
        metadata["prefect_state"] == "Cancelling" and flow_run["state_name"] == "Cancelled"
    )
    assert "failure_reason" not in metadata  # not failed by the heartbeat reaper


def test_prefect_is_the_real_one(outcome: Dict[str, Any]) -> None:
    assert outcome["prefect_version"] == "3.9.1"


def test_success(outcome: Dict[str, Any], runs: Dict[str, Dict[str, Any]]) -> None:
    flow_run = outcome["scenarios"]["succeeds"]
    assert flow_run["returned"] == 42 and flow_run["state_name"] == "Completed"
    run = run_of(outcome, runs, "succeeds")
    assert run["status"] == "completed"
    assert_common(run, flow_run, outcome, "succeeds")
    # Parameter names only: the password's value never reaches the registry.
    assert run["metadata"]["parameter_names"] == ["password", "rows"]
    assert "s3cr3t" not in json.dumps(run)
    assert run["heartbeat_timeout_seconds"] == 180  # three times the default 60 s


def test_failure(outcome: Dict[str, Any], runs: Dict[str, Dict[str, Any]]) -> None:
    flow_run = outcome["scenarios"]["fails"]
    assert flow_run["raised"] == "ValueError" and flow_run["state_name"] == "Failed"
    run = run_of(outcome, runs, "fails")
    assert run["status"] == "failed"
    assert_common(run, flow_run, outcome, "fails")
    assert run["metadata"]["error_type"] == "ValueError"
    assert run["metadata"]["error_message"] == "bad rows: 7"
    assert "ValueError: bad rows: 7" in run["metadata"]["prefect_state_message"]


def test_async_flow(outcome: Dict[str, Any], runs: Dict[str, Dict[str, Any]]) -> None:
    """Async flows go through Prefect's async engine, which awaits hooks
    that return a coroutine; ours are plain functions and work there too."""
    flow_run = outcome["scenarios"]["async_fails"]
    assert flow_run["raised"] == "RuntimeError" and flow_run["state_name"] == "Failed"
    run = run_of(outcome, runs, "async_fails")
    assert run["status"] == "failed"
    assert_common(run, flow_run, outcome, "async-fails")
    assert run["metadata"]["error_type"] == "RuntimeError"
    assert run["metadata"]["error_message"] == "async boom"


def test_the_flows_own_hooks_still_run(outcome: Dict[str, Any]) -> None:
    assert "fails:Failed" in outcome["user_hook_calls"]


def test_timeout(outcome: Dict[str, Any], runs: Dict[str, Dict[str, Any]]) -> None:
    flow_run = outcome["scenarios"]["times_out"]
    assert flow_run["state_name"] == "TimedOut" and flow_run["state_type"] == "FAILED"
    # The caller gets a TimeoutError, but inside the flow the timeout arrives
    # as a CancelledError, which an `except Exception` in the body misses.
    assert flow_run["raised"] == "FlowRunTimeoutError"
    assert outcome["timeout_seen_by_body"][0] == "BaseException:CancelledError"
    assert flow_run["seconds"] < 15  # the 30 s sleep was cut at 1 s
    run = run_of(outcome, runs, "times_out")
    assert run["status"] == "failed"
    assert_common(run, flow_run, outcome, "times-out")
    assert run["metadata"]["prefect_state"] == "TimedOut"
    assert run["metadata"]["error_type"] == "FlowRunTimeoutError"
    assert run["metadata"]["prefect_state_message"] == "Flow run exceeded timeout of 1.0 second(s)"


def test_crash_in_process(outcome: Dict[str, Any], runs: Dict[str, Dict[str, Any]]) -> None:
    """``sys.exit`` in a flow: a BaseException, which Prefect calls a crash."""
    flow_run = outcome["scenarios"]["exits"]
    assert flow_run["raised"] == "SystemExit" and flow_run["raised_is_exception"] is False
    assert flow_run["state_name"] == "Crashed"
    run = run_of(outcome, runs, "exits")
    assert run["status"] == "failed"
    assert_common(run, flow_run, outcome, "exits")
    assert run["metadata"]["error_type"] == "SystemExit"
    assert run["metadata"]["prefect_state_message"] == "Execution was aborted by Python system exit call."


def test_cancellation_by_the_runner(outcome: Dict[str, Any], runs: Dict[str, Dict[str, Any]]) -> None:
    """Cancelled through the API while it slept, under a runner: the runner
    killed its process and ran ``on_cancellation`` in its own process, which
    found the registry run by its idempotency key."""
    flow_run = outcome["scenarios"]["cancel_me"]
    assert flow_run["state_name"] == "Cancelled" and flow_run["state_type"] == "CANCELLED"
    assert flow_run["seconds_to_cancel"] < 60  # not the 120 s sleep
    run = run_of(outcome, runs, "cancel_me")
    assert run["status"] == "cancelled"
    assert_common(run, flow_run, outcome, "cancel-me")
    assert run["metadata"]["prefect_state"] == "Cancelling"
    assert run["metadata"]["deployment_id"]
    assert "error_type" not in run["metadata"]


def test_killed_process_under_the_runner(outcome: Dict[str, Any], runs: Dict[str, Dict[str, Any]]) -> None:
    """The flow run's process got SIGKILL: the runner marks it Crashed and
    runs ``on_crashed`` itself."""
    flow_run = outcome["scenarios"]["kill_me"]
    assert flow_run["state_name"] == "Crashed"
    run = run_of(outcome, runs, "kill_me")
    assert run["status"] == "failed"
    assert_common(run, flow_run, outcome, "kill-me")
    assert run["metadata"]["error_type"] == "Crashed"  # no exception object in the runner
    assert "-9" in run["metadata"]["error_message"] or "SIGKILL" in run["metadata"]["error_message"]


def test_heartbeats_keep_a_long_flow_alive(outcome: Dict[str, Any], runs: Dict[str, Dict[str, Any]]) -> None:
    """``slow`` has a 3 s heartbeat timeout and sleeps 5 s; the server's
    reaper (every second here) would have failed it without heartbeats, and
    the final update would then have been refused (a final run stays final)."""
    flow_run = outcome["scenarios"]["slow"]
    assert flow_run["returned"] == 5.0
    run = run_of(outcome, runs, "slow")
    assert run["heartbeat_timeout_seconds"] == 3
    assert run["status"] == "completed"
    assert_common(run, flow_run, outcome, "slow")
    started = datetime.fromisoformat(run["started_at"].replace("Z", "+00:00"))
    completed = datetime.fromisoformat(str(run["completed_at"]).replace("Z", "+00:00"))
    assert (completed - started).total_seconds() >= 4.5


def test_one_registry_run_per_flow_run(outcome: Dict[str, Any], runs: Dict[str, Dict[str, Any]]) -> None:
    recorded = {s["flow_run_id"] for s in outcome["scenarios"].values()}
    assert recorded <= set(runs)
    # Nothing from the registry-down runs, and nothing else.
    assert set(runs) == recorded


def test_no_contract_records_nothing(outcome: Dict[str, Any], registry: Registry) -> None:
    flow_run = outcome["no_contract"]
    assert flow_run["returned"] == "ok" and flow_run["state_name"] == "Completed"
    assert any("has no contract id" in m for m in outcome["no_contract_warnings"])
    with registry.client() as client:
        assert client.list_runs(pipeline_name="no-contract")["total"] == 0


def test_registry_down_changes_nothing(outcome: Dict[str, Any]) -> None:
    up, down = outcome["scenarios"], outcome["down"]
    assert down["succeeds"]["returned"] == up["succeeds"]["returned"] == 42
    assert down["succeeds"]["state_name"] == "Completed"
    assert down["fails"]["raised"] == "ValueError" and down["fails"]["state_name"] == "Failed"
    assert down["times_out"]["raised"] == "FlowRunTimeoutError"
    assert down["times_out"]["state_name"] == "TimedOut"
    # Fast: the failed connection costs well under a second per flow.
    assert down["succeeds"]["seconds"] < up["succeeds"]["seconds"] + 3
    assert down["fails"]["seconds"] < up["fails"]["seconds"] + 3
    assert down["times_out"]["seconds"] < 5
    # One warning for the outage, not one per call.
    warnings = [m for m in outcome["down_warnings"] if "griot-registry" in m]
    assert len(warnings) == 1 and "could not create a run" in warnings[0]
