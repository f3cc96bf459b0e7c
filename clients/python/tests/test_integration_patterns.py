"""The spec's Prefect integration pattern, run as printed under real Prefect
against the live server.

The snippet lives in ``tests/patterns/prefect_example.py`` exactly as the spec
has it apart from the URL. It is run by the Prefect integration's driver
(``tests/realtools/prefect_flows/driver.py``, in the Prefect venv, in the same
Prefect session as the integration's own flows, because Prefect's local
server is slow to start); the tests here check what it recorded.

The spec's Airflow and dbt snippets are not run: they cannot work as printed
with the real tools. Airflow 3 has no ``execution_date`` in the task context
and both Airflow 2 and 3 refuse a TaskFlow parameter named ``run_id``; dbt's
``on-run-end`` hooks are SQL run by the adapter, and no dbt object offers
``results.success`` next to ``results.results``. The real integrations
(``griot_registry.integrations.airflow`` and ``.dbt``) are tested with the
real tools under ``tests/realtools/``.
"""

from __future__ import annotations

import ast
import re
import textwrap
from pathlib import Path
from typing import Any, Dict

import pytest

from conftest import REPO_ROOT, Registry

from realtools.test_prefect import prefect_outcome

PATTERNS = Path(__file__).resolve().parent / "patterns"
#: The spec the product started from, kept in the repository so this test
#: never depends on what sits beside the checkout.
SPEC = REPO_ROOT / "docs" / "runs-api.rst"
#: Where the team keeps the original, when it is beside the checkout.
SHARED_SPEC = REPO_ROOT.parent / "shared" / "spec" / "runs-api.rst"
SPEC_URL = '"http://registry:8000"'


@pytest.fixture(scope="module")
def snippet(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Any]:
    """What the snippet's runs gave, and the contract they reported under."""
    outcome = prefect_outcome(registry, tmp_path_factory)
    return {**outcome["spec_snippet"], "contract_id": outcome["snippet_contract_id"]}


# -- Prefect ---------------------------------------------------------------


def test_prefect_flow(registry: Registry, snippet: Dict[str, Any]) -> None:
    flow_run = snippet["with_key"]
    assert "raised" not in flow_run and flow_run["returned"] is None
    assert flow_run["state_name"] == "Completed"
    with registry.client() as client:
        page = client.list_runs(contract_id=snippet["contract_id"])
    assert page["total"] == 1
    run = page["items"][0]
    # The name is the one the snippet passes, not Prefect's flow name
    # ("data-pipeline") nor its flow run's; nothing ties the registry run to
    # the flow run (no pipeline_id, no metadata).
    assert run["pipeline_name"] == "data_pipeline"
    assert run["pipeline_id"] is None
    assert run["status"] == "completed" and run["completed_at"] is not None
    assert run["metadata"] == {}
    assert run["created_by"] == "bootstrap"
    assert run["heartbeat_timeout_seconds"] is None


def test_prefect_without_a_key_is_refused(registry: Registry, snippet: Dict[str, Any]) -> None:
    # GRIOT_API_KEY was unset for this call: the key really comes from the
    # environment. The task's 401 fails the task, then the flow, and the
    # caller gets the client's error back from Prefect.
    flow_run = snippet["without_key"]
    assert flow_run["raised"] == "AuthenticationError"
    assert flow_run["state_name"] == "Failed"
    with registry.client() as client:
        assert client.list_runs(contract_id=snippet["contract_id"] + "-nokey")["total"] == 0


# -- the snippet still says what the spec says -----------------------------


def _spec_block(section: str) -> str:
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


def test_snippet_matches_the_spec() -> None:
    block = _spec_block("Prefect Integration")
    ours = (PATTERNS / "prefect_example.py").read_text()
    spec_functions = _functions(block.replace(SPEC_URL, "REGISTRY_URL"))
    assert spec_functions and spec_functions == _functions(ours)
    assert _imports(block) == _imports(ours)


def test_the_kept_spec_is_the_team_s_spec() -> None:
    """docs/runs-api.rst is a copy; when the original is beside the checkout
    (as on the team's machines and in CI), the copy must not have drifted."""
    if not SHARED_SPEC.is_file():
        pytest.skip(f"no original beside the checkout at {SHARED_SPEC}")
    assert SPEC.read_text() == SHARED_SPEC.read_text(), "copy shared/spec/runs-api.rst to docs/"
