"""``griot-dbt`` (``griot_registry.integrations.dbt``) with real dbt-core 1.11
and dbt-duckdb in their own venv, against the live registry.

The project in ``dbt_project/`` has two models and four tests: on
``customers`` (default contract) ``not_null(email)`` fails on one row and
``unique(customer_id)`` passes but names its own contract in ``meta``; on
``orders`` (``meta.griot_contract_id: orders``) ``not_null(order_id)`` passes
and ``accepted_values(status)`` warns on one row. dbt runs as few times as
possible: one module fixture runs plain ``dbt build`` and records it twice,
another runs every ``griot-dbt <dbt command>`` scenario; the tests then check
what the registry holds against what dbt itself wrote in run_results.json.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from griot_registry import SyncRegistryClient

from conftest import Registry, free_port

from .venvs import tool_venv

PROJECT = Path(__file__).resolve().parent / "dbt_project"
DBT_TIMEOUT = 300
#: The default contract's share of the project: the customers model and
#: its not_null(email) test.
DEFAULT_STATUS_COUNTS = {"fail": 1, "success": 1}


@dataclass
class Call:
    """One finished command: how it ended, what it printed, how long it
    took, and the run_results.json it left (if any)."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float
    run_results: Optional[Dict[str, Any]] = None

    @property
    def invocation_id(self) -> str:
        assert self.run_results is not None
        return str(self.run_results["metadata"]["invocation_id"])

    def result(self, name: str) -> Dict[str, Any]:
        """The run_results entry of the node called ``name``."""
        assert self.run_results is not None
        for result in self.run_results["results"]:
            if result["unique_id"].split(".")[2] == name:
                return dict(result)
        raise KeyError(name)


def dbt_env(project: Path, **extra: str) -> Dict[str, str]:
    """dbt reading this project's profiles.yml, sending no usage stats, and
    nothing from the developer's own dbt or griot settings."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DBT_", "GRIOT_")) and key != "REGISTRY_URL"
    }
    env.update(
        {
            "DBT_PROFILES_DIR": str(project),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            "DBT_USE_COLORS": "false",
            "DO_NOT_TRACK": "1",
        }
    )
    env.update(extra)
    return env


def fresh_project(parent: Path) -> Path:
    project = parent / "griot_demo"
    shutil.copytree(
        PROJECT, project, ignore=shutil.ignore_patterns("target", "logs", "*.duckdb*")
    )
    return project


def call(args: List[str], project: Path, env: Dict[str, str], runs_dbt: bool = True) -> Call:
    """Run a command in the project folder and keep the artifacts it left
    (the next dbt command overwrites them)."""
    run_results = project / "target" / "run_results.json"
    if runs_dbt and run_results.exists():
        run_results.unlink()
    started = time.monotonic()
    done = subprocess.run(
        args,
        cwd=project,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=DBT_TIMEOUT,
    )
    seconds = time.monotonic() - started
    results = json.loads(run_results.read_text()) if run_results.exists() else None
    return Call(done.returncode, done.stdout, done.stderr, seconds, results)


def runs_of(client: SyncRegistryClient, contract_id: str, invocation_id: str) -> List[Dict[str, Any]]:
    return [
        dict(run)
        for run in client.iter_runs(contract_id=contract_id)
        if run["pipeline_id"] == invocation_id
    ]


def only_run(client: SyncRegistryClient, contract_id: str, invocation_id: str) -> Dict[str, Any]:
    runs = runs_of(client, contract_id, invocation_id)
    assert len(runs) == 1, runs
    return runs[0]


def validations_by_test(client: SyncRegistryClient, run_id: str) -> Dict[str, Dict[str, Any]]:
    """A run's validations keyed by the dbt test's name; fails on duplicates."""
    found: Dict[str, Dict[str, Any]] = {}
    for validation in client.iter_validations(run_id=run_id):
        name = validation["metadata"]["dbt_test"]
        assert name not in found, f"{name} recorded twice"
        found[name] = dict(validation)
    return found


def same_instant(registry_value: str, dbt_value: str) -> bool:
    """dbt and the registry both write UTC with microseconds; compare the
    digits, not the spelling of the zone."""
    return registry_value.rstrip("Z")[:26] == dbt_value.rstrip("Z").replace("+00:00", "")[:26]


@pytest.fixture(scope="session")
def dbt_venv() -> Path:
    return tool_venv("dbt", extras="dbt")


@pytest.fixture(scope="module")
def recorded(
    dbt_venv: Path, registry: Registry, tmp_path_factory: pytest.TempPathFactory
) -> Dict[str, Any]:
    """Plain ``dbt build``, then ``griot-dbt record`` twice on its artifacts."""
    project = fresh_project(tmp_path_factory.mktemp("dbt-record"))
    contract = f"dbt-{uuid.uuid4().hex[:10]}"
    env = dbt_env(
        project, GRIOT_URL=registry.url, GRIOT_API_KEY=registry.api_key, GRIOT_CONTRACT_ID=contract
    )
    build = call([str(dbt_venv / "bin" / "dbt"), "build"], project, env)
    assert build.run_results is not None, build.stdout + build.stderr
    griot_dbt = str(dbt_venv / "bin" / "griot-dbt")
    first = call([griot_dbt, "record"], project, env, runs_dbt=False)
    with registry.client() as client:
        runs = {
            c: runs_of(client, c, build.invocation_id)
            for c in (contract, "orders", "customer-keys")
        }
        after_first = {
            c: [validations_by_test(client, run["id"]) for run in found]
            for c, found in runs.items()
        }
    second = call(
        [griot_dbt, "record", "--project-dir", str(project)], project, env, runs_dbt=False
    )
    return {
        "project": project,
        "contract": contract,
        "build": build,
        "first": first,
        "second": second,
        "runs_after_first": runs,
        "validations_after_first": after_first,
        "env": env,
    }


def test_plain_dbt_build_fails_on_the_null_email(recorded: Dict[str, Any]) -> None:
    build: Call = recorded["build"]
    assert build.returncode == 1, build.stdout
    assert build.result("not_null_customers_email")["status"] == "fail"
    assert build.result("not_null_customers_email")["failures"] == 1


def test_record_reports_what_it_recorded(recorded: Dict[str, Any]) -> None:
    first: Call = recorded["first"]
    assert first.returncode == 0, first.stderr
    assert "(failed) for contract" in first.stderr
    assert "1 new validation(s)" in first.stderr


def test_record_makes_one_failed_run_with_the_invocations_metadata(
    recorded: Dict[str, Any], client: SyncRegistryClient
) -> None:
    build: Call = recorded["build"]
    run = only_run(client, recorded["contract"], build.invocation_id)
    meta = build.run_results["metadata"]  # type: ignore[index]
    assert run["status"] == "failed"
    assert run["pipeline_name"] == "griot_demo"
    assert same_instant(run["started_at"], meta["invocation_started_at"])
    assert same_instant(run["completed_at"], meta["generated_at"])
    metadata = run["metadata"]
    assert metadata["dbt_command"] == "build"
    assert metadata["dbt_version"] == meta["dbt_version"]
    assert metadata["dbt_version"].startswith("1.11.")
    assert metadata["dbt_invocation_id"] == build.invocation_id
    # Under `dbt build` a test is a test, not a model, and passes as `pass`.
    assert metadata["status_counts"] == DEFAULT_STATUS_COUNTS
    assert metadata["resource_counts"] == {"model": 1, "test": 1}
    assert metadata["elapsed_seconds"] == pytest.approx(build.run_results["elapsed_time"], abs=0.01)  # type: ignore[index]
    assert [f["unique_id"].split(".")[2] for f in metadata["failed_nodes"]] == [
        "not_null_customers_email"
    ]


def test_failing_test_is_a_failed_validation_with_code_path_and_row_count(
    recorded: Dict[str, Any], client: SyncRegistryClient
) -> None:
    build: Call = recorded["build"]
    run = only_run(client, recorded["contract"], build.invocation_id)
    validations = validations_by_test(client, run["id"])
    assert list(validations) == ["not_null_customers_email"]
    validation = validations["not_null_customers_email"]
    dbt_result = build.result("not_null_customers_email")
    assert validation["status"] == "failed"
    assert validation["contract_id"] == recorded["contract"]
    assert validation["run_id"] == run["id"]
    assert validation["errors"] == [
        {"code": "not_null", "message": dbt_result["message"], "path": "email", "row_count": 1}
    ]
    assert validation["metrics"]["duration_ms"] == round(dbt_result["execution_time"] * 1000)
    assert validation["metadata"]["dbt_unique_id"] == dbt_result["unique_id"]


def test_meta_on_the_model_and_on_the_test_name_the_contract(
    recorded: Dict[str, Any], client: SyncRegistryClient
) -> None:
    build: Call = recorded["build"]
    orders = only_run(client, "orders", build.invocation_id)
    assert orders["status"] == "completed"  # a warning does not fail dbt, nor the run
    assert orders["metadata"]["status_counts"] == {"pass": 1, "success": 1, "warn": 1}
    assert orders["metadata"]["resource_counts"] == {"model": 1, "test": 2}
    validations = validations_by_test(client, orders["id"])
    assert set(validations) == {
        "not_null_orders_order_id",
        "accepted_values_orders_status__placed__shipped",
    }
    passed = validations["not_null_orders_order_id"]
    assert passed["status"] == "passed" and passed["errors"] == []
    warned = validations["accepted_values_orders_status__placed__shipped"]
    assert warned["status"] == "warning"
    assert warned["warnings"] == [
        {
            "code": "accepted_values",
            "message": build.result("accepted_values_orders_status__placed__shipped")["message"],
        }
    ]
    assert warned["metrics"]["rows_failed"] == 1
    assert warned["metadata"]["dbt_column"] == "status"

    # The test's own meta wins over its model's (customers has none).
    keys = only_run(client, "customer-keys", build.invocation_id)
    assert keys["status"] == "completed"
    assert keys["metadata"]["resource_counts"] == {"test": 1}
    assert [v["status"] for v in validations_by_test(client, keys["id"]).values()] == ["passed"]
    assert set(keys["metadata"]["dbt_invocation_contracts"]) == {
        recorded["contract"],
        "orders",
        "customer-keys",
    }


def test_recording_again_adds_nothing(
    recorded: Dict[str, Any], client: SyncRegistryClient
) -> None:
    second: Call = recorded["second"]
    assert second.returncode == 0, second.stderr
    assert "already recorded" in second.stderr
    build: Call = recorded["build"]
    for contract, before in recorded["runs_after_first"].items():
        now = runs_of(client, contract, build.invocation_id)
        assert [(r["id"], r["version"]) for r in now] == [(r["id"], r["version"]) for r in before]
        assert [validations_by_test(client, r["id"]) for r in now] == recorded[
            "validations_after_first"
        ][contract]


def test_a_replayed_create_records_no_validation_again(
    recorded: Dict[str, Any], registry: Registry, client: SyncRegistryClient
) -> None:
    """The other road to idempotency: when the look-up for an earlier run
    finds nothing (say it failed), the create is replayed through its
    Idempotency-Key and the run's validations are not recorded twice."""
    from griot_registry.integrations import dbt as griot_dbt
    from griot_registry.integrations._common import Settings

    class NoLookup(griot_dbt._Reporter):
        def find_runs(self, *args: Any, **kwargs: Any) -> Optional[List[Any]]:
            return []

    build: Call = recorded["build"]
    invocation = griot_dbt.load_invocation(recorded["project"] / "target", recorded["contract"])
    assert invocation.invocation_id == build.invocation_id
    with NoLookup(Settings(url=registry.url, api_key=registry.api_key)) as reporter:
        outcome = griot_dbt._record_contract(reporter, invocation, recorded["contract"])
    before = recorded["runs_after_first"][recorded["contract"]]
    assert outcome.run_id == before[0]["id"]
    assert (outcome.new_validations, outcome.known_validations) == (0, 1)
    assert len(validations_by_test(client, outcome.run_id)) == 1


def test_record_without_artifacts_names_the_path(dbt_venv: Path, tmp_path: Path) -> None:
    done = call([str(dbt_venv / "bin" / "griot-dbt"), "record"], tmp_path, dbt_env(tmp_path))
    assert done.returncode == 3
    assert str(Path("target") / "run_results.json") in done.stderr
    assert "no dbt artifacts" in done.stderr


def test_help_and_usage_errors(dbt_venv: Path, tmp_path: Path) -> None:
    griot_dbt = str(dbt_venv / "bin" / "griot-dbt")
    shown = call([griot_dbt, "--help"], tmp_path, dbt_env(tmp_path))
    assert shown.returncode == 0
    for words in ("record", "build|run|test|seed|snapshot", "griot_contract_id", "exit codes"):
        assert words in shown.stdout
    record_help = call([griot_dbt, "record", "--help"], tmp_path, dbt_env(tmp_path))
    assert record_help.returncode == 0 and "--target-path" in record_help.stdout
    unknown = call([griot_dbt, "compile"], tmp_path, dbt_env(tmp_path))
    assert unknown.returncode == 2 and "unknown command" in unknown.stderr


# -- griot-dbt running dbt itself -------------------------------------------------


@pytest.fixture(scope="module")
def wrapped(
    dbt_venv: Path, registry: Registry, tmp_path_factory: pytest.TempPathFactory
) -> Dict[str, Any]:
    """Every ``griot-dbt <dbt command>`` scenario, one after another in one
    project copy (so dbt parses it in full once)."""
    project = fresh_project(tmp_path_factory.mktemp("dbt-wrapped"))
    griot_dbt = str(dbt_venv / "bin" / "griot-dbt")
    up = dbt_env(project, GRIOT_URL=registry.url, GRIOT_API_KEY=registry.api_key)
    down = dbt_env(
        project, GRIOT_URL=f"http://127.0.0.1:{free_port()}", GRIOT_API_KEY=registry.api_key
    )
    contracts = {name: f"dbt-{name}-{uuid.uuid4().hex[:8]}" for name in ("build", "run", "down", "broken")}
    calls: Dict[str, Any] = {"contracts": contracts, "project": project}
    calls["build"] = call([griot_dbt, "--contract-id", contracts["build"], "build"], project, up)
    calls["run"] = call(
        [griot_dbt, "run", "--select", "customers"], project, {**up, "GRIOT_CONTRACT_ID": contracts["run"]}
    )
    calls["down"] = call([griot_dbt, "--contract-id", contracts["down"], "build"], project, down)
    calls["record_down"] = call([griot_dbt, "record"], project, down, runs_dbt=False)
    # A project dbt cannot even parse: no run_results.json, exit code 2.
    broken = project / "models" / "broken.yml"
    broken.write_text("models: [ {name: x\n")
    try:
        calls["broken"] = call(
            [griot_dbt, "--contract-id", contracts["broken"], "build"], project, up
        )
    finally:
        broken.unlink()
    return calls


def test_griot_dbt_build_exits_with_dbts_code_and_records(
    wrapped: Dict[str, Any], client: SyncRegistryClient
) -> None:
    build: Call = wrapped["build"]
    assert build.returncode == 1, build.stdout + build.stderr
    assert "Done. PASS=4 WARN=1 ERROR=1" in build.stdout  # dbt's own output is untouched
    run = only_run(client, wrapped["contracts"]["build"], build.invocation_id)
    assert run["status"] == "failed"
    assert run["metadata"]["dbt_command"] == "build"
    assert run["metadata"]["status_counts"] == DEFAULT_STATUS_COUNTS
    validations = validations_by_test(client, run["id"])
    assert {name: v["status"] for name, v in validations.items()} == {
        "not_null_customers_email": "failed"
    }
    assert validations["not_null_customers_email"]["errors"][0]["row_count"] == 1
    orders = only_run(client, "orders", build.invocation_id)
    assert sorted(v["status"] for v in validations_by_test(client, orders["id"]).values()) == [
        "passed",
        "warning",
    ]


def test_griot_dbt_run_that_succeeds_exits_0_with_a_completed_run(
    wrapped: Dict[str, Any], client: SyncRegistryClient
) -> None:
    done: Call = wrapped["run"]
    assert done.returncode == 0, done.stdout + done.stderr
    run = only_run(client, wrapped["contracts"]["run"], done.invocation_id)
    assert run["status"] == "completed"
    assert run["metadata"]["dbt_command"] == "run"
    assert run["metadata"]["status_counts"] == {"success": 1}
    assert run["metadata"]["resource_counts"] == {"model": 1}
    assert client.list_validations(run_id=run["id"])["total"] == 0


def test_registry_down_changes_no_exit_code_and_warns_fast(
    wrapped: Dict[str, Any], recorded: Dict[str, Any], client: SyncRegistryClient
) -> None:
    down: Call = wrapped["down"]
    assert down.returncode == wrapped["build"].returncode == recorded["build"].returncode == 1
    assert "Done. PASS=4 WARN=1 ERROR=1" in down.stdout
    assert "WARNING griot-registry: could not" in down.stderr
    assert "was not recorded" in down.stderr
    # One connection refused, then every call is skipped: recording adds
    # seconds at most to dbt's own time (a fresh full parse in `recorded`).
    assert down.seconds < recorded["build"].seconds + 10
    assert runs_of(client, wrapped["contracts"]["down"], down.invocation_id) == []

    record_down: Call = wrapped["record_down"]
    assert record_down.returncode == 0
    assert "WARNING griot-registry: could not" in record_down.stderr
    assert record_down.seconds < 6


def test_dbt_stopping_before_any_node_is_a_failed_run(
    wrapped: Dict[str, Any], client: SyncRegistryClient
) -> None:
    broken: Call = wrapped["broken"]
    assert broken.returncode == 2, broken.stdout + broken.stderr
    assert broken.run_results is None
    runs = list(client.iter_runs(contract_id=wrapped["contracts"]["broken"]))
    assert len(runs) == 1
    assert runs[0]["status"] == "failed"
    assert runs[0]["pipeline_name"] == "griot_demo"
    assert "Parsing Error" in runs[0]["metadata"]["dbt_error"]
    assert runs[0]["metadata"]["nodes"] == 0
