"""The spec's integration patterns (Airflow, dbt, Prefect), run as written
against the live server.

The snippets live in ``tests/patterns/`` exactly as the spec has them apart
from the URL. Airflow and Prefect are not installed: tiny stand-in modules
(decorators that return the function unchanged, a context-manager ``DAG``)
are put in ``sys.modules`` while a snippet is loaded, and the tasks get a
fake Airflow context or dbt results object.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
import textwrap
import types
import uuid
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Dict, Optional

import pytest

from griot_registry import AuthenticationError, SyncRegistryClient

from conftest import REPO_ROOT, Registry

PATTERNS = Path(__file__).resolve().parent / "patterns"
SPEC = REPO_ROOT.parent / "shared" / "spec" / "runs-api.rst"
SPEC_URL = '"http://registry:8000"'


def _identity(fn: Callable[..., Any]) -> Callable[..., Any]:
    return fn


class _StubDAG:
    def __init__(self, dag_id: str, **kwargs: Any) -> None:
        self.dag_id = dag_id

    def __enter__(self) -> "_StubDAG":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None


@pytest.fixture
def stub_orchestrators(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stand-ins for the parts of airflow and prefect the snippets import."""
    airflow = types.ModuleType("airflow")
    airflow.DAG = _StubDAG  # type: ignore[attr-defined]
    decorators = types.ModuleType("airflow.decorators")
    decorators.task = _identity  # type: ignore[attr-defined]
    airflow.decorators = decorators  # type: ignore[attr-defined]
    prefect = types.ModuleType("prefect")
    prefect.flow = _identity  # type: ignore[attr-defined]
    prefect.task = _identity  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "airflow", airflow)
    monkeypatch.setitem(sys.modules, "airflow.decorators", decorators)
    monkeypatch.setitem(sys.modules, "prefect", prefect)


def load_pattern(name: str, **globals_: Any) -> types.ModuleType:
    """Load tests/patterns/<name>.py as a fresh module, then set globals."""
    path = PATTERNS / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"griot_pattern_{name}_{uuid.uuid4().hex}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for key, value in globals_.items():
        setattr(module, key, value)
    return module


def airflow_context(dag_id: str = "user_events_validation", try_number: int = 1) -> Dict[str, Any]:
    return {
        "dag": SimpleNamespace(dag_id=dag_id),
        "run_id": "scheduled__2024-01-15T00:00:00+00:00",
        "execution_date": datetime(2024, 1, 15, tzinfo=timezone.utc),
        "ti": SimpleNamespace(try_number=try_number),
    }


def dbt_results(success: bool, statuses: list) -> SimpleNamespace:  # type: ignore[type-arg]
    return SimpleNamespace(success=success, results=[SimpleNamespace(status=s) for s in statuses])


# -- Airflow ---------------------------------------------------------------


@pytest.mark.usefixtures("stub_orchestrators")
def test_airflow_start_and_complete_run(registry: Registry, client: SyncRegistryClient, contract_id: str) -> None:
    dag = load_pattern("airflow_example", REGISTRY_URL=registry.url, API_KEY=registry.api_key)

    run_id = dag.start_run(contract_id, **airflow_context(try_number=2))
    run = client.get_run(run_id)
    assert run["status"] == "running"
    assert run["contract_id"] == contract_id
    assert run["pipeline_name"] == "user_events_validation"
    assert run["pipeline_id"] == "scheduled__2024-01-15T00:00:00+00:00"
    assert run["metadata"] == {"execution_date": "2024-01-15 00:00:00+00:00", "try_number": 2}
    assert run["created_by"] == "bootstrap"

    dag.complete_run(run_id)
    run = client.get_run(run_id)
    assert run["status"] == "completed" and run["completed_at"] is not None
    assert run["metadata"] == {"execution_date": "2024-01-15 00:00:00+00:00", "try_number": 2}
    assert run["created_by"] == "bootstrap"


@pytest.mark.usefixtures("stub_orchestrators")
def test_airflow_complete_run_as_failed(registry: Registry, client: SyncRegistryClient, contract_id: str) -> None:
    dag = load_pattern("airflow_example", REGISTRY_URL=registry.url, API_KEY=registry.api_key)
    run_id = dag.start_run(contract_id=contract_id, **airflow_context())
    dag.complete_run(run_id, status="failed")
    run = client.get_run(run_id)
    assert run["status"] == "failed" and run["created_by"] == "bootstrap"


# -- dbt -------------------------------------------------------------------


@pytest.mark.parametrize(
    "success, statuses, expected",
    [
        (True, ["success", "success", "success"], "completed"),
        (False, ["success", "error", "skipped", "success"], "failed"),
    ],
)
def test_dbt_on_run_end(
    registry: Registry,
    client: SyncRegistryClient,
    contract_id: str,
    monkeypatch: pytest.MonkeyPatch,
    success: bool,
    statuses: list,  # type: ignore[type-arg]
    expected: str,
) -> None:
    run = client.create_run(contract_id, pipeline_name="jaffle_shop", status="running", metadata={"target": "prod"})
    monkeypatch.setenv("REGISTRY_URL", registry.url)
    monkeypatch.setenv("GRIOT_API_KEY", registry.api_key)  # the snippet passes no api_key
    monkeypatch.setenv("GRIOT_RUN_ID", run["id"])
    hook = load_pattern("dbt_example")

    hook.on_run_end(dbt_results(success, statuses))

    final = client.get_run(run["id"])
    assert final["status"] == expected and final["completed_at"] is not None
    assert final["metadata"] == {
        "target": "prod",
        "models_run": len(statuses),
        "models_success": statuses.count("success"),
    }
    assert final["created_by"] == "bootstrap"


def test_dbt_on_run_end_without_a_run_id_does_nothing(
    registry: Registry, client: SyncRegistryClient, contract_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = client.create_run(contract_id, status="running")
    monkeypatch.setenv("REGISTRY_URL", registry.url)
    monkeypatch.setenv("GRIOT_API_KEY", registry.api_key)
    load_pattern("dbt_example").on_run_end(dbt_results(True, ["success"]))
    assert client.get_run(run["id"]) == run


# -- Prefect ---------------------------------------------------------------


@pytest.mark.usefixtures("stub_orchestrators")
def test_prefect_flow(registry: Registry, client: SyncRegistryClient, contract_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRIOT_API_KEY", registry.api_key)  # the snippet passes no api_key
    pipeline = load_pattern("prefect_example", REGISTRY_URL=registry.url)

    pipeline.data_pipeline(contract_id)

    page = client.list_runs(contract_id=contract_id)
    assert page["total"] == 1
    run = page["items"][0]
    assert run["pipeline_name"] == "data_pipeline"
    assert run["status"] == "completed" and run["completed_at"] is not None
    assert run["metadata"] == {}
    assert run["created_by"] == "bootstrap"


@pytest.mark.usefixtures("stub_orchestrators")
def test_prefect_create_griot_run(registry: Registry, client: SyncRegistryClient, contract_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRIOT_API_KEY", registry.api_key)
    pipeline = load_pattern("prefect_example", REGISTRY_URL=registry.url)
    run_id = pipeline.create_griot_run(contract_id, "nightly")
    run = client.get_run(run_id)
    assert run["status"] == "running" and run["pipeline_name"] == "nightly"
    assert run["created_by"] == "bootstrap"


@pytest.mark.usefixtures("stub_orchestrators")
def test_prefect_without_a_key_is_refused(registry: Registry, contract_id: str) -> None:
    # GRIOT_API_KEY is unset here: the key really comes from the environment.
    pipeline = load_pattern("prefect_example", REGISTRY_URL=registry.url)
    with pytest.raises(AuthenticationError) as info:
        pipeline.data_pipeline(contract_id)
    assert info.value.status_code == 401


# -- the snippets still say what the spec says -----------------------------


def _spec_block(section: str) -> Optional[str]:
    if not SPEC.is_file():
        return None
    text = SPEC.read_text()
    match = re.search(
        re.escape(section) + r"\n\^+\n.*?\.\. code-block:: python\n\n((?:(?:   [^\n]*)?\n)+)",
        text,
        re.S,
    )
    assert match, f"section {section!r} with a python block not found in {SPEC}"
    return textwrap.dedent(match.group(1))


def _functions(source: str) -> Dict[str, str]:
    """Top-level functions, decorators included, as source text."""
    lines = source.splitlines()
    found = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef):
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            assert node.end_lineno is not None
            found[node.name] = "\n".join(lines[first - 1 : node.end_lineno])
    return found


def _imports(source: str) -> set:  # type: ignore[type-arg]
    return {ast.dump(n) for n in ast.parse(source).body if isinstance(n, (ast.Import, ast.ImportFrom))}


@pytest.mark.parametrize(
    "section, pattern",
    [
        ("Airflow DAG Integration", "airflow_example"),
        ("dbt Integration", "dbt_example"),
        ("Prefect Integration", "prefect_example"),
    ],
)
def test_snippets_match_the_spec(section: str, pattern: str) -> None:
    block = _spec_block(section)
    if block is None:
        pytest.skip(f"spec not found at {SPEC}")
    ours = (PATTERNS / f"{pattern}.py").read_text()
    spec_functions = _functions(block.replace(SPEC_URL, "REGISTRY_URL"))
    assert spec_functions and spec_functions == _functions(ours)
    assert _imports(block) == _imports(ours)
