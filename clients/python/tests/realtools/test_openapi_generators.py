"""Clients generated from our OpenAPI spec by the real generators, used
against the live server.

Users generate clients from ``openapi/openapi.json`` rather than use ours, so
the spec is only as good as what the generators make of it. This module runs
openapi-python-client 0.29 (in its own venv) and openapi-typescript 7.13 with
openapi-fetch 0.17 (from ``generators/package-lock.json``), fails on any
generator warning, checks that every operation and the ``Error`` schema come
out, type-checks a flow written against each client (``mypy --strict`` and
``tsc --strict``) and runs it against the ``registry`` fixture: create with an
Idempotency-Key, PATCH with If-Match, get, list, record a validation, stats,
and a 409 parsed into the generated error type.

The spec generated from is the checked-in file, the one users download and
reviewers read; a test asserts the binary under test serves exactly that
file, so a stale binary or a stale file is reported as such, not as odd
generator output. (The repo's drift test keeps the file equal to the code.)

Each generator and each flow runs once per module; the tests assert on what
they left.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence

import httpx
import pytest

from .venvs import REPO_ROOT, tool_venv

HERE = Path(__file__).resolve().parent
GENERATORS = HERE / "generators"
SPEC_PATH = REPO_ROOT / "openapi" / "openapi.json"
NODE_CACHE = REPO_ROOT / ".cache" / "node"
#: A generator or type checker that takes longer has hung.
TOOL_TIMEOUT = 300


def _run(args: Sequence[str], cwd: Path, env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    return subprocess.run(
        list(args), cwd=str(cwd), env=env, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=TOOL_TIMEOUT,
    )


def _shown(result: subprocess.CompletedProcess) -> str:  # type: ignore[type-arg]
    return f"exit {result.returncode}\n--- stdout\n{result.stdout[-6000:]}\n--- stderr\n{result.stderr[-6000:]}"


def _tool_env(extra: Dict[str, str]) -> Dict[str, str]:
    """The environment for a tool: ours without GRIOT_* (which would point the
    flows elsewhere), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRIOT_")}
    env["NO_COLOR"] = "1"
    env.update(extra)
    return env


# --- the spec ---------------------------------------------------------------


@pytest.fixture(scope="module")
def spec() -> Dict[str, Any]:
    return dict(json.loads(SPEC_PATH.read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def operation_ids(spec: Dict[str, Any]) -> List[str]:
    ids = [op["operationId"] for methods in spec["paths"].values() for op in methods.values()]
    assert ids and len(ids) == len(set(ids)), f"operationIds must exist and be unique: {ids}"
    return ids


def _differences(a: Any, b: Any, pointer: str = "") -> Iterator[str]:
    """JSON pointers where two documents differ, for a readable failure."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            yield from _differences(a.get(key, "<absent>"), b.get(key, "<absent>"), f"{pointer}/{key}")
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for index, (x, y) in enumerate(zip(a, b)):
            yield from _differences(x, y, f"{pointer}/{index}")
    elif a != b:
        yield pointer or "/"


def test_served_spec_is_the_checked_in_spec(registry: Any, spec: Dict[str, Any]) -> None:
    served = httpx.get(f"{registry.url}/openapi.json", timeout=10).json()
    differing = list(_differences(served, spec))
    assert not differing, (
        f"{registry.binary} serves a spec that differs from {SPEC_PATH} at {len(differing)} place(s): "
        "regenerate the file (`griot-registry openapi > openapi/openapi.json`) or test the matching "
        "binary. First ones:\n" + "\n".join(differing[:20])
    )


def _alternatives(schema: Dict[str, Any], spec: Dict[str, Any]) -> Iterator[Dict[str, Any]]:
    """The plain schemas a value may match: $refs followed, anyOf/oneOf unfolded."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        yield from _alternatives(spec["components"]["schemas"][name], spec)
    elif "anyOf" in schema or "oneOf" in schema:
        for part in schema.get("anyOf", []) + schema.get("oneOf", []):
            yield from _alternatives(part, spec)
    else:
        yield schema


def _takes_a_date(schema: Dict[str, Any], spec: Dict[str, Any]) -> bool:
    for alt in _alternatives(schema, spec):
        if alt.get("type", "string") != "string" or alt.get("format") not in (None, "date"):
            continue
        if "pattern" in alt and not re.search(alt["pattern"], "2024-01-15"):
            continue
        return True
    return False


def test_date_filters_accept_a_plain_date(spec: Dict[str, Any]) -> None:
    """The server takes `start_date=2024-01-15` (README); a spec that types the
    filter as date-time only makes generated clients refuse it."""
    refused = []
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            for param in op.get("parameters", []):
                if param["name"] in ("start_date", "end_date") and not _takes_a_date(param["schema"], spec):
                    refused.append(f"{method.upper()} {path} {param['name']}: {json.dumps(param['schema'])}")
    assert not refused, "date filters whose schema refuses 2024-01-15:\n" + "\n".join(refused)


# --- openapi-python-client --------------------------------------------------


@dataclass
class PythonClient:
    venv: Path
    workdir: Path
    generate: subprocess.CompletedProcess  # type: ignore[type-arg]
    project: Optional[Path]
    package: Optional[str]

    def env(self, extra: Dict[str, str]) -> Dict[str, str]:
        return _tool_env({"PYTHONPATH": str(self.project), "MYPYPATH": str(self.project), **extra})

    def require(self) -> None:
        if self.project is None:
            pytest.fail("openapi-python-client generated no package:\n" + _shown(self.generate), pytrace=False)


@pytest.fixture(scope="module")
def python_client(tmp_path_factory: pytest.TempPathFactory) -> PythonClient:
    venv = tool_venv("openapi-python-client")
    workdir = tmp_path_factory.mktemp("python-client")
    shutil.copy(SPEC_PATH, workdir / "openapi.json")
    # The venv's bin on PATH: the generator runs ruff from there on its output,
    # and warns when it cannot.
    env = _tool_env({"PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"})
    generated = _run([str(venv / "bin" / "openapi-python-client"), "generate", "--path", "openapi.json"], workdir, env)
    clients = sorted(workdir.glob("*/*/client.py"))
    project = clients[0].parent.parent if clients else None
    package = clients[0].parent.name if clients else None
    return PythonClient(venv, workdir, generated, project, package)


@pytest.fixture(scope="module")
def python_shape(python_client: PythonClient) -> Dict[str, Any]:
    python_client.require()
    result = _run(
        [str(python_client.venv / "bin" / "python"), str(GENERATORS / "python_shape.py"),
         str(SPEC_PATH), str(python_client.package)],
        python_client.workdir, python_client.env({}),
    )
    if result.returncode != 0:
        pytest.fail("inspecting the generated Python client failed:\n" + _shown(result), pytrace=False)
    return dict(json.loads(result.stdout))


def _python_warnings(output: str) -> List[str]:
    """The problems openapi-python-client reports after its "Warning(s)" (or
    "Error(s)") banner, one line per distinct message with its count; the
    JSON it quotes and object addresses are left out so equal ones group."""
    match = re.search(r"(Warning|Error)\(s\) encountered while generating[^\n]*\n", output)
    if not match:
        return []
    counts: Dict[str, int] = {}
    for line in output[match.end():].splitlines():
        text = re.sub(r" at 0x[0-9a-f]+", "", line.strip())
        if not text or text[0] in '{}[]"' or text.startswith("If you believe this was a mistake"):
            continue
        counts[text] = counts.get(text, 0) + 1
    return [f"{count}x {text}" for text, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def test_python_generator_reports_no_warnings(python_client: PythonClient) -> None:
    gen = python_client.generate
    assert gen.returncode == 0, _shown(gen)
    output = gen.stdout + gen.stderr
    warnings = _python_warnings(output)
    assert not warnings and "warning" not in output.lower(), (
        "openapi-python-client reported problems (count x message):\n" + "\n".join(warnings or [output])
    )


def test_python_client_has_every_operation(python_shape: Dict[str, Any], operation_ids: List[str]) -> None:
    missing = [f"{op} ({python_shape['operations'][op]['method']} {python_shape['operations'][op]['path']})"
               for op in operation_ids if not python_shape["operations"][op]["found"]]
    assert not missing, f"operations openapi-python-client did not generate: {missing}"


def test_python_client_has_the_error_model(python_shape: Dict[str, Any]) -> None:
    error = python_shape["error_model"]
    assert error["exists"], "the generated package has no models.Error"
    assert error["detail_type"] == "ErrorDetail"
    assert error["code_type"] == "ErrorCode", "detail.code must be the generated ErrorCode enum"
    assert error["code"] == "INVALID_TRANSITION" and error["round_trip"]


def test_python_reads_take_an_unauthenticated_client(python_shape: Dict[str, Any], spec: Dict[str, Any]) -> None:
    """Reads are open on the server (README), so the generated reads must take a
    plain ``Client``; a spec that lists a key as one option still makes
    openapi-python-client demand an ``AuthenticatedClient``. The webhook
    reads are admin operations: they state a required key of their own, and
    must demand one."""
    def own_key(path: str, method: str) -> bool:
        return bool(spec["paths"][path][method].get("security"))

    reads = [(p, m) for p, methods in spec["paths"].items() for m in methods if m == "get" and not own_key(p, m)]
    admin_reads = [(p, m) for p, methods in spec["paths"].items() for m in methods if m == "get" and own_key(p, m)]
    assert {p for p, _ in admin_reads} == {
        "/api/v1/webhooks", "/api/v1/webhooks/{webhook_id}", "/api/v1/webhooks/{webhook_id}/deliveries",
    }
    for path, method in admin_reads:
        op = python_shape["operations"][spec["paths"][path][method]["operationId"]]
        assert op["found"] and not op["accepts_client"], f"{method.upper()} {path} should demand a key"
    demanding = []
    for path, method in reads:
        op = python_shape["operations"][spec["paths"][path][method]["operationId"]]
        if op["found"] and not op["accepts_client"]:
            demanding.append(f"{method.upper()} {path}: client: {op['client_annotation']}")
    assert not demanding, "reads that demand an AuthenticatedClient:\n" + "\n".join(demanding)


def test_python_date_filters_take_a_date(python_shape: Dict[str, Any]) -> None:
    dated = {op_id: op["date_params"] for op_id, op in python_shape["operations"].items() if op.get("date_params")}
    assert dated, "no generated operation has start_date/end_date"
    refusing = {op_id: params for op_id, params in dated.items()
                if not all(p["takes_a_date"] for p in params.values())}
    assert not refusing, f"date filters typed datetime-only in the generated client: {refusing}"


def test_python_flow_type_checks(python_client: PythonClient) -> None:
    """``mypy --strict`` on the flow, with the generated package as it is: a wrong
    type (a read that demands an AuthenticatedClient, a missing model) is what
    a user of the generated client would hit."""
    python_client.require()
    flow = python_client.workdir / "python_flow.py"
    shutil.copy(GENERATORS / "python_flow.py", flow)
    result = _run(
        [str(python_client.venv / "bin" / "python"), "-m", "mypy", "--strict", "--config-file", "",
         "--follow-imports=silent", "--cache-dir", str(python_client.workdir / ".mypy_cache"), flow.name],
        python_client.workdir, python_client.env({}),
    )
    assert result.returncode == 0, "mypy --strict on python_flow.py:\n" + result.stdout + result.stderr


# --- openapi-typescript + openapi-fetch -------------------------------------


def node_modules() -> Path:
    """``npm ci`` of generators/package-lock.json into a git-ignored cache,
    named after a hash of the pins and node's version; reused while they stay."""
    pins = [GENERATORS / "package.json", GENERATORS / "package-lock.json"]
    node_version = _run(["node", "--version"], REPO_ROOT).stdout.strip()
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in pins) + node_version.encode()).hexdigest()[:12]
    home = NODE_CACHE / f"generators-{digest}"
    stamp = home / ".complete"
    if not stamp.exists():
        if home.exists():
            shutil.rmtree(home)
        home.mkdir(parents=True)
        for pin in pins:
            shutil.copy(pin, home / pin.name)
        result = _run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], home)
        if result.returncode != 0:
            pytest.fail("npm ci of generators/package-lock.json failed:\n" + _shown(result), pytrace=False)
        stamp.write_text("ok\n")
    return home / "node_modules"


@dataclass
class TypeScriptClient:
    workdir: Path
    generate: subprocess.CompletedProcess  # type: ignore[type-arg]
    tsc: subprocess.CompletedProcess  # type: ignore[type-arg]

    def diagnostics(self, file_name: str) -> List[str]:
        """tsc's errors in one file (tsc prints `file(line,col): error TS...`)."""
        lines = (self.tsc.stdout + self.tsc.stderr).splitlines()
        return [line[:500] for line in lines if line.startswith(f"{file_name}(")]


def _expected_ts(operation_ids: List[str]) -> str:
    """A file that compiles only if schema.d.ts has every operation of the spec
    and the Error schema with its ErrorCode: the types are the generated client."""
    union = " | ".join(json.dumps(op) for op in operation_ids)
    return (
        'import type { components, operations } from "./schema.js";\n'
        f"type Expected = {union};\n"
        "type Missing = Exclude<Expected, keyof operations>;\n"
        "export const everyOperationGenerated: [Missing] extends [never] ? true : { missing: Missing } = true;\n"
        'export const errorCode: components["schemas"]["Error"]["detail"]["code"] = "INVALID_TRANSITION";\n'
    )


@pytest.fixture(scope="module")
def typescript_client(tmp_path_factory: pytest.TempPathFactory, operation_ids: List[str]) -> TypeScriptClient:
    modules = node_modules()
    workdir = tmp_path_factory.mktemp("typescript-client")
    shutil.copy(SPEC_PATH, workdir / "openapi.json")
    for name in ("package.json", "tsconfig.json", "flow.ts"):
        shutil.copy(GENERATORS / name, workdir / name)
    (workdir / "node_modules").symlink_to(modules, target_is_directory=True)
    (workdir / "expected.ts").write_text(_expected_ts(operation_ids), encoding="utf-8")
    env = _tool_env({})
    bin_dir = modules / ".bin"
    generated = _run([str(bin_dir / "openapi-typescript"), "openapi.json", "-o", "schema.d.ts"], workdir, env)
    # One tsc run both type-checks (strict, from tsconfig.json) and emits the
    # JS node runs: tsc emits despite type errors, so the flow still runs and
    # the type tests and the run tests fail separately. Same check as a
    # separate `tsc --noEmit --strict`, one compile fewer.
    compiled = _run([str(bin_dir / "tsc"), "-p", "tsconfig.json", "--strict", "--pretty", "false"], workdir, env)
    return TypeScriptClient(workdir, generated, compiled)


#: What openapi-typescript prints on a clean run; anything else is a warning.
_TS_BANNER = re.compile(r"^(✨ openapi-typescript [\d.]+|🚀 openapi\.json → schema\.d\.ts \[[\d.]+m?s\])$")


def test_typescript_generator_reports_no_warnings(typescript_client: TypeScriptClient) -> None:
    gen = typescript_client.generate
    assert gen.returncode == 0, _shown(gen)
    lines = [line.strip() for line in (gen.stdout + gen.stderr).splitlines() if line.strip()]
    unexpected = [line for line in lines if not _TS_BANNER.match(line)]
    assert not unexpected, "openapi-typescript said more than its banner:\n" + "\n".join(unexpected)
    assert (typescript_client.workdir / "schema.d.ts").stat().st_size > 0


def test_typescript_types_have_every_operation_and_the_error_schema(typescript_client: TypeScriptClient) -> None:
    if not (typescript_client.workdir / "schema.d.ts").exists():
        pytest.fail("openapi-typescript wrote no schema.d.ts:\n" + _shown(typescript_client.generate), pytrace=False)
    errors = typescript_client.diagnostics("expected.ts") + typescript_client.diagnostics("schema.d.ts")
    assert not errors, "tsc on the generated types:\n" + "\n".join(errors)


def test_typescript_flow_type_checks(typescript_client: TypeScriptClient) -> None:
    """``tsc --strict`` proves the flow's types: the Error schema as openapi-fetch's
    ``error``, enum members as literals, header parameters by name."""
    tsc = typescript_client.tsc
    errors = typescript_client.diagnostics("flow.ts")
    assert not errors, "tsc --strict on flow.ts:\n" + "\n".join(errors)
    assert tsc.returncode == 0, _shown(tsc)


# --- the flows, against the live server ------------------------------------


@dataclass
class Flow:
    language: str
    contract_id: str
    result: subprocess.CompletedProcess  # type: ignore[type-arg]
    report: Dict[str, Any]

    def step(self, name: str) -> Dict[str, Any]:
        if name not in self.report:
            pytest.fail(
                f"the {self.language} flow did not reach step {name!r} (reached {list(self.report)}):\n"
                + _shown(self.result),
                pytrace=False,
            )
        return dict(self.report[name])


@pytest.fixture(scope="module", params=["python", "typescript"])
def flow(request: pytest.FixtureRequest, registry: Any, tmp_path_factory: pytest.TempPathFactory) -> Flow:
    language = str(request.param)
    contract_id = f"contract-gen-{language}-{uuid.uuid4().hex[:8]}"
    env = {"GRIOT_URL": registry.url, "GRIOT_API_KEY": registry.api_key, "GRIOT_CONTRACT_ID": contract_id}
    report_path = tmp_path_factory.mktemp(f"flow-{language}") / "report.json"
    if language == "python":
        client: PythonClient = request.getfixturevalue("python_client")
        client.require()
        args = [str(client.venv / "bin" / "python"), str(GENERATORS / "python_flow.py"), str(report_path)]
        result = _run(args, client.workdir, client.env(env))
    else:
        ts: TypeScriptClient = request.getfixturevalue("typescript_client")
        if not (ts.workdir / "dist" / "flow.js").exists():
            pytest.fail("tsc emitted no dist/flow.js:\n" + _shown(ts.tsc), pytrace=False)
        result = _run(["node", "dist/flow.js", str(report_path)], ts.workdir, _tool_env(env))
    report = json.loads(report_path.read_text(encoding="utf-8")) if report_path.exists() else {}
    return Flow(language, contract_id, result, report)


def test_flow_runs_to_the_end(flow: Flow) -> None:
    assert flow.result.returncode == 0, f"the {flow.language} flow failed:\n" + _shown(flow.result)


def test_flow_create_with_idempotency_key(flow: Flow) -> None:
    create, replay = flow.step("create"), flow.step("replay")
    assert create["status_code"] == 201 and create["status"] == "running"
    assert create["id"].startswith("run_")
    assert replay["status_code"] == 200, "the same Idempotency-Key and body must replay"
    assert replay["id"] == create["id"] and replay["replayed_header"] == "true"


def test_flow_update_with_if_match(flow: Flow) -> None:
    got, patch, stale = flow.step("get"), flow.step("patch"), flow.step("stale_if_match")
    assert got["status_code"] == 200 and got["etag"] == f'"{got["version"]}"'
    assert patch["status_code"] == 200 and patch["version"] == got["version"] + 1
    assert patch["metadata"] == {"rows_processed": 50000}
    assert stale == {"status_code": 412, "code": "PRECONDITION_FAILED"}


def test_flow_lists_by_contract_and_date(flow: Flow) -> None:
    listed, run_id = flow.step("list"), flow.step("create")["id"]
    assert listed["status_code"] == 200
    assert listed["ids"] == [run_id], "one run for the contract: the replay created nothing"
    assert listed["ids_since_start_day"] == [run_id]


def test_flow_records_a_validation_and_reads_stats(flow: Flow) -> None:
    validation, stats = flow.step("validation"), flow.step("stats")
    assert validation["status_code"] == 201 and validation["status"] == "failed"
    assert validation["run_id"] == flow.step("create")["id"]
    assert stats["status_code"] == 200
    assert (stats["total"], stats["failed"]) == (1, 1)
    assert stats["error_codes"] == ["null_values"]


def test_flow_conflict_is_the_typed_error(flow: Flow) -> None:
    assert flow.step("complete") == {"status_code": 200, "status": "completed"}
    conflict = flow.step("conflict")
    assert conflict["status_code"] == 409
    assert conflict["model"] == "Error", "the 409 body must parse into the generated Error type"
    assert conflict["code"] == "INVALID_TRANSITION" and conflict["is_invalid_transition"] is True
    assert conflict["message"]


def test_registry_holds_what_the_flow_did(flow: Flow, registry: Any) -> None:
    flow.step("conflict")  # the flow got to its end; else say where it stopped
    with registry.client() as client:
        runs = client.list_runs(contract_id=flow.contract_id)["items"]
        assert len(runs) == 1, runs
        run = client.get_run(runs[0]["id"])
    assert run["status"] == "completed" and run["completed_at"]
    assert run["pipeline_name"] == f"generated-{flow.language}"
    assert run["metadata"] == {"rows_processed": 50000}, "the stale If-Match PATCH must have changed nothing"
    assert [v["status"] for v in run["validations"]] == ["failed"]
