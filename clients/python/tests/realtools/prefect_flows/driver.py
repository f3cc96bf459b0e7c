"""Runs every Prefect scenario of the tests in one process (the Prefect
server takes a while to start) and writes what happened to a JSON file, for
the pytest side to check against what the registry recorded.

Run in the Prefect venv: ``python driver.py OUT.json``. The environment
carries ``PREFECT_HOME`` (a temporary folder), ``GRIOT_URL`` and
``REGISTRY_URL`` (the registry), ``GRIOT_API_KEY``, ``GRIOT_CONTRACT_ID``,
``GRIOT_SNIPPET_CONTRACT_ID`` (for the spec's snippet) and ``GRIOT_DOWN_URL``
(a port where nothing listens, for the registry-down runs).

Besides the integration's flows it runs the spec's Prefect snippet
(``tests/patterns/prefect_example.py``) as printed, with only its URL taken
from ``REGISTRY_URL``: once with ``GRIOT_API_KEY`` set, once without.

Prefect runs in its local ephemeral mode: a Prefect API server started here
on a loopback port, over SQLite in ``PREFECT_HOME``. It is started explicitly
(rather than on first use) so that the runner subprocess and the flow-run
processes it spawns talk to the same server.
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import json
import logging
import os
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional
from uuid import UUID

BEGAN = time.monotonic()
HERE = Path(__file__).resolve().parent
PATTERNS = HERE.parents[1] / "patterns"


def _newest_flow_run(client: Any, flow_name: str) -> Dict[str, Any]:
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.client.schemas.sorting import FlowRunSort

    runs = client.read_flow_runs(
        flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])),
        sort=FlowRunSort.EXPECTED_START_TIME_DESC,
        limit=1,
    )
    return _describe(runs[0])


def _describe(flow_run: Any) -> Dict[str, Any]:
    state = flow_run.state
    return {
        "flow_run_id": str(flow_run.id),
        "flow_run_name": flow_run.name,
        "state_name": state.name if state else None,
        "state_type": state.type.value if state else None,
    }


def run_in_process(client: Any, flow_fn: Any, **params: Any) -> Dict[str, Any]:
    """Call the flow as a user would, and note what the call gave back."""
    started = time.monotonic()
    outcome: Dict[str, Any] = {}
    try:
        returned = flow_fn(**params)
        if inspect.iscoroutine(returned):  # an async flow
            returned = asyncio.run(returned)
        outcome["returned"] = returned
    except BaseException as error:  # SystemExit, timeouts: record, do not die
        outcome["raised"] = type(error).__name__
        outcome["raised_is_exception"] = isinstance(error, Exception)
        outcome["raised_message"] = str(error)
    outcome["seconds"] = round(time.monotonic() - started, 3)
    outcome.update(_newest_flow_run(client, flow_fn.name))
    return outcome


def _wait(what: str, check: Callable[[], Any], timeout: float, pause: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(pause)
    raise TimeoutError(f"gave up waiting for {what} after {timeout:.0f} s")


def start_runner(markers: Path) -> "subprocess.Popen[bytes]":
    """``python flows.py serve`` in its own process group, started early: it
    takes a while to import Prefect, which the in-process flows cover."""
    log = open(markers / "runner.log", "wb")
    try:
        return subprocess.Popen(
            [sys.executable, str(HERE / "flows.py"), "serve"],
            cwd=str(HERE),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        log.close()


def stop_runner(runner: "subprocess.Popen[bytes]") -> None:
    if runner.poll() is None:
        os.killpg(runner.pid, signal.SIGTERM)
    try:
        runner.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(runner.pid, signal.SIGKILL)
        runner.wait(timeout=10)


def run_served(client: Any, runner: "subprocess.Popen[bytes]", markers: Path, timings: Dict[str, float]) -> Dict[str, Dict[str, Any]]:
    """Cancel one flow run and kill another's process, the real way: both
    are deployments served by a Prefect runner, which is what notices a
    cancel request (and kills the run's process) or a dead process, and
    then runs the ``on_cancellation``/``on_crashed`` hooks itself."""
    from prefect.client.schemas.objects import StateType
    from prefect.deployments import run_deployment
    from prefect.states import State

    step = time.monotonic()

    def deployments_ready() -> bool:
        if runner.poll() is not None:
            log = (markers / "runner.log").read_text(errors="replace")
            raise RuntimeError(f"the runner exited with {runner.returncode}:\n{log[-4000:]}")
        return len(client.read_deployments()) >= 2

    _wait("the runner's deployments", deployments_ready, 120)
    timings["runner_ready_wait"] = round(time.monotonic() - step, 3)

    # Both at once: each flow run is a new process that imports Prefect.
    step = time.monotonic()
    cancel_run = run_deployment("cancel-me/cancel_me", timeout=0)
    kill_run = run_deployment("kill-me/kill_me", timeout=0)

    # Cancel: what `prefect flow-run cancel ID` does, once the body runs.
    _wait("cancel_me to start", lambda: (markers / "cancel_me").exists(), 90)
    cancelled_at = time.monotonic()
    client.set_flow_run_state(cancel_run.id, State(type=StateType.CANCELLING))
    results: Dict[str, Dict[str, Any]] = {}
    final = _wait("cancel_me to be cancelled", lambda: _final(client, cancel_run.id), 60)
    results["cancel_me"] = {**_describe(final), "seconds_to_cancel": round(time.monotonic() - cancelled_at, 3)}

    # Crash: the flow run's process dies (SIGKILL) under the runner.
    final = _wait("kill_me to crash", lambda: _final(client, kill_run.id), 90)
    results["kill_me"] = _describe(final)
    timings["served_runs"] = round(time.monotonic() - step, 3)
    return results


def _final(client: Any, flow_run_id: UUID) -> Optional[Any]:
    flow_run = client.read_flow_run(flow_run_id)
    return flow_run if flow_run.state and flow_run.state.is_final() else None


def run_spec_snippet(client: Any) -> Dict[str, Any]:
    """The spec's snippet under real Prefect: its module loaded from the file,
    its ``REGISTRY_URL`` global pointed at the test registry, its flow called
    the way the spec's user would call it."""
    spec = importlib.util.spec_from_file_location("griot_spec_prefect_example", PATTERNS / "prefect_example.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.REGISTRY_URL = os.environ["REGISTRY_URL"]  # type: ignore[attr-defined]
    contract = os.environ["GRIOT_SNIPPET_CONTRACT_ID"]
    results = {"with_key": run_in_process(client, module.data_pipeline, contract_id=contract)}
    api_key = os.environ.pop("GRIOT_API_KEY")
    try:
        results["without_key"] = run_in_process(client, module.data_pipeline, contract_id=contract + "-nokey")
    finally:
        os.environ["GRIOT_API_KEY"] = api_key
    return results


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: List[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def main(out: Path) -> None:
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect.client.orchestration import get_client

    timings: Dict[str, float] = {"prefect_import": round(time.monotonic() - BEGAN, 3)}
    began = time.monotonic()
    server = SubprocessASGIServer()
    server.start(timeout=180)
    timings["prefect_server_start"] = round(time.monotonic() - began, 3)
    os.environ["PREFECT_API_URL"] = server.api_url  # for the runner and its runs
    results: Dict[str, Any] = {"timings": timings}
    markers = out.parent / "markers"
    markers.mkdir(parents=True, exist_ok=True)
    os.environ["GRIOT_TEST_MARKERS"] = str(markers)
    runner = start_runner(markers)
    try:
        with temporary_settings({PREFECT_API_URL: server.api_url}), get_client(sync_client=True) as client:
            import prefect
            import flows

            results["prefect_version"] = prefect.__version__
            scenarios: Dict[str, Any] = {}
            step = time.monotonic()
            scenarios["succeeds"] = run_in_process(client, flows.succeeds, rows=21, password="s3cr3t")
            scenarios["fails"] = run_in_process(client, flows.fails, rows=7)
            scenarios["times_out"] = run_in_process(client, flows.times_out)
            scenarios["exits"] = run_in_process(client, flows.exits)
            scenarios["async_fails"] = run_in_process(client, flows.async_fails)
            scenarios["slow"] = run_in_process(client, flows.slow, seconds=5.0)
            results["user_hook_calls"] = list(flows.USER_HOOK_CALLS)
            results["timeout_seen_by_body"] = list(flows.TIMEOUT_SEEN_BY_BODY)
            timings["in_process_flows"] = round(time.monotonic() - step, 3)

            step = time.monotonic()
            results["spec_snippet"] = run_spec_snippet(client)
            timings["spec_snippet"] = round(time.monotonic() - step, 3)

            step = time.monotonic()
            scenarios.update(run_served(client, runner, markers, timings))
            stop_runner(runner)
            timings["served_flows"] = round(time.monotonic() - step, 3)

            records = _Records()
            logging.getLogger("griot_registry").addHandler(records)

            # No contract anywhere: the flow runs, nothing is recorded.
            contract = os.environ.pop("GRIOT_CONTRACT_ID")
            try:
                results["no_contract"] = run_in_process(client, flows.no_contract)
            finally:
                os.environ["GRIOT_CONTRACT_ID"] = contract
            results["no_contract_warnings"] = list(records.messages)
            del records.messages[:]

            # The registry is down: the same flows, pointed at a closed port.
            step = time.monotonic()
            os.environ["GRIOT_URL"] = os.environ["GRIOT_DOWN_URL"]
            down: Dict[str, Any] = {}
            down["succeeds"] = run_in_process(client, flows.succeeds, rows=21, password="s3cr3t")
            down["fails"] = run_in_process(client, flows.fails, rows=7)
            down["times_out"] = run_in_process(client, flows.times_out)
            results["down"] = down
            results["down_warnings"] = records.messages
            timings["registry_down_flows"] = round(time.monotonic() - step, 3)
            results["scenarios"] = scenarios
    except BaseException:
        results["driver_error"] = traceback.format_exc()
        raise
    finally:
        stop_runner(runner)
        step = time.monotonic()
        server.stop()
        timings["prefect_server_stop"] = round(time.monotonic() - step, 3)
        timings["total_before_exit"] = round(time.monotonic() - BEGAN, 3)
        out.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
