"""The Airflow plugin (``griot_registry.integrations.airflow``) with real
Airflow 3.3 and 2.11, each in its own venv, against the live registry.

The DAGs in ``airflow/dags/`` hold no griot-registry code: the plugin,
found through the ``airflow.plugins`` entry point of the installed package,
does all the reporting. For each Airflow version one module fixture runs,
as separate processes on one SQLite metadata DB each (copied from a
migrated template kept in the venv, so ``airflow db migrate`` runs once per
venv):

* ``airflow dags test griot_af_success`` (contract from a DAG param; short
  heartbeat interval, and a 5 s task, so heartbeats are sent);
* ``airflow dags test griot_af_failing`` (no contract anywhere: the dag_id;
  its ``explode`` task fails twice: retries=1);
* ``run_dag.py griot_af_tagged <date>`` twice, one after the other, in
  the same AIRFLOW_HOME: the same DAG run (same run id) run again
  (contract from a ``griot:contract=`` tag, which beats GRIOT_CONTRACT_ID);
* ``airflow dags test griot_af_success`` with GRIOT_URL on a closed port;
* ``airflow dags test griot_af_callbacks`` with the listener turned off:
  the opt-in DAG callbacks alone.

They run in parallel, except the repeat, which starts when the first run of
``griot_af_tagged`` has ended. The tests then check what the registry holds.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import pytest

from griot_registry import SyncRegistryClient
from griot_registry.types import RunEvent, RunListItem

from conftest import Registry, free_port

from .venvs import tool_venv

HERE = Path(__file__).resolve().parent / "airflow"
DAGS = HERE / "dags"
RUN_DAG_TEST = HERE / "run_dag.py"
AIRFLOW_TIMEOUT = 420
#: A DAG run must not take much longer with the registry down than up; this
#: bounds it loosely, because the machine is shared and Airflow 3's own
#: start-up varies by tens of seconds under load.
DOWN_MAX_SECONDS = 150.0

#: Per version: the venv, the name of the API key its runs report with, and
#: the logical date of the repeated DAG run (distinct per version, so the
#: two versions' runs never share a run id).
VERSIONS = {
    "airflow3": ("airflow3", "2024-01-03"),
    "airflow2": ("airflow2", "2024-01-02"),
}


@dataclass
class Call:
    """One finished Airflow process."""

    name: str
    returncode: int
    output: str
    seconds: float

    @property
    def dag_run_ids(self) -> List[str]:
        """The DAG run ids Airflow logged as finished (``DagRun Finished:``
        in both versions; ``run_dag.py`` prints its own line)."""
        found = re.findall(r"DagRun Finished: dag_id=[^,]+, .*?run_id=([^,\s]+),", self.output)
        found += re.findall(r"griot-test: dag_run (\S+) ended", self.output)
        return list(dict.fromkeys(found))

    @property
    def dag_run_id(self) -> str:
        ids = self.dag_run_ids
        assert len(ids) == 1, f"{self.name}: expected one DAG run, found {ids}\n{self.tail()}"
        return ids[0]

    def tail(self, chars: int = 6000) -> str:
        return self.output[-chars:]


@dataclass
class AirflowResults:
    version: str
    key_name: str
    rerun_date: str
    calls: Dict[str, Call] = field(default_factory=dict)
    #: The scheduler scenario (Airflow 2 only): its log, and the registry
    #: runs of the DAG runs it ran, by DAG run id.
    scheduler: Optional["SchedulerResult"] = None

    def __getitem__(self, name: str) -> Call:
        return self.calls[name]


def _template_home(venv: Path) -> Path:
    """An AIRFLOW_HOME whose metadata DB is migrated, made once per venv
    (the venv is rebuilt, and this with it, whenever the pins change)."""
    template = venv / "griot-airflow-home"
    stamp = template / ".migrated"
    if not stamp.exists():
        shutil.rmtree(template, ignore_errors=True)
        template.mkdir(parents=True)
        result = subprocess.run(
            [str(venv / "bin" / "airflow"), "db", "migrate"],
            env=_airflow_env(template, {}),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=AIRFLOW_TIMEOUT,
        )
        if result.returncode != 0:
            pytest.fail(
                f"airflow db migrate failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}",
                pytrace=False,
            )
        stamp.write_text("ok\n")
    return template


def _new_home(template: Path, home: Path) -> Path:
    home.mkdir(parents=True)
    shutil.copy2(template / "airflow.db", home / "airflow.db")
    return home


def _airflow_env(home: Path, extra: Dict[str, str]) -> Dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GRIOT_", "AIRFLOW_", "AIRFLOW__", "REGISTRY_URL"))
    }
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "PYTHONUNBUFFERED": "1",
            "NO_COLOR": "1",
        }
    )
    env.update(extra)
    return env


class _Process:
    def __init__(self, name: str, args: List[str], env: Dict[str, str], log: Path) -> None:
        self.name = name
        self.log = log
        self.started = time.monotonic()
        self._file = open(log, "wb")
        self.process = subprocess.Popen(
            args, env=env, stdin=subprocess.DEVNULL, stdout=self._file, stderr=subprocess.STDOUT
        )

    def wait(self) -> Call:
        try:
            self.process.wait(timeout=AIRFLOW_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        finally:
            self._file.close()
        seconds = time.monotonic() - self.started
        output = self.log.read_text(errors="replace")
        return Call(self.name, self.process.returncode, output, seconds)


#: The DAG runs the scheduler scenario triggers: (dag_id, run id).
SCHEDULED = (("griot_af_success", "griot_sched_success"), ("griot_af_failing", "griot_sched_failing"))
SCHEDULER_TIMEOUT = 240.0


@dataclass
class SchedulerResult:
    log: str
    finished: bool


def _run_scheduler(venv: Path, env: Dict[str, str], registry: Registry, log: Path) -> SchedulerResult:
    """Airflow 2's production path: ``airflow scheduler`` (SequentialExecutor
    on SQLite, each task an ``airflow tasks run`` process) runs two triggered
    DAG runs. The scheduler's ``on_dag_run_running`` creates each run, the
    task processes land on the same one, the scheduler ends it. Stopped as
    soon as the registry holds both runs final.

    Airflow 3's scheduler needs an API server and a DAG processor beside it
    to run a task: too heavy for this suite, so only Airflow 2 runs this.
    """
    airflow_bin = str(venv / "bin" / "airflow")
    env = {
        **env,
        "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "GRIOT_HEARTBEAT_SECONDS": "2",
    }
    steps = [[airflow_bin, "dags", "reserialize"]] + [
        [airflow_bin, "dags", "trigger", dag_id, "--run-id", run_id] for dag_id, run_id in SCHEDULED
    ]
    with open(log, "wb") as out:
        for step in steps:
            subprocess.run(step, env=env, stdin=subprocess.DEVNULL, stdout=out,
                           stderr=subprocess.STDOUT, timeout=AIRFLOW_TIMEOUT, check=True)
        scheduler = subprocess.Popen(
            [airflow_bin, "scheduler"], env=env, stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        finished = False
        try:
            deadline = time.monotonic() + SCHEDULER_TIMEOUT
            with registry.client() as client:
                while time.monotonic() < deadline and scheduler.poll() is None:
                    statuses = {
                        run["pipeline_id"]: run["status"]
                        for dag_id, _ in SCHEDULED
                        for run in client.iter_runs(pipeline_name=dag_id)
                    }
                    if all(statuses.get(run_id) in ("completed", "failed") for _, run_id in SCHEDULED):
                        finished = True
                        break
                    time.sleep(1)
        finally:
            # The scheduler and the processes it started share its session.
            if scheduler.poll() is None:
                os.killpg(scheduler.pid, signal.SIGTERM)
                try:
                    scheduler.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(scheduler.pid, signal.SIGKILL)
                    scheduler.wait()
    return SchedulerResult(log.read_text(errors="replace"), finished)


@pytest.fixture(scope="module", params=list(VERSIONS))
def airflow(
    request: pytest.FixtureRequest, registry: Registry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AirflowResults]:
    version: str = request.param
    requirements, rerun_date = VERSIONS[version]
    venv = tool_venv(requirements, "airflow")
    template = _template_home(venv)
    key_name = f"{version}-listener"
    api_key = registry.create_key(key_name)
    work = tmp_path_factory.mktemp(version)
    airflow_bin = str(venv / "bin" / "airflow")
    python_bin = str(venv / "bin" / "python")
    report = {"GRIOT_URL": registry.url, "GRIOT_API_KEY": api_key}

    def start(name: str, args: List[str], extra: Dict[str, str], home: Optional[Path] = None) -> _Process:
        home = home or _new_home(template, work / name)
        return _Process(name, args, _airflow_env(home, {**report, **extra}), work / f"{name}.log")

    rerun_home = _new_home(template, work / "rerun")
    rerun_args = [python_bin, str(RUN_DAG_TEST), "griot_af_tagged", rerun_date]
    rerun_env = {"GRIOT_CONTRACT_ID": "contract-from-env"}
    first_wave = [
        start("success", [airflow_bin, "dags", "test", "griot_af_success"],
              {"GRIOT_HEARTBEAT_SECONDS": "2"}),
        start("failing", [airflow_bin, "dags", "test", "griot_af_failing"], {}),
        start("rerun-1", rerun_args, rerun_env, rerun_home),
        start("down", [airflow_bin, "dags", "test", "griot_af_success"],
              {"GRIOT_URL": f"http://127.0.0.1:{free_port()}"}),
        start("callbacks", [airflow_bin, "dags", "test", "griot_af_callbacks"],
              {"GRIOT_AIRFLOW_LISTENER": "false"}),
    ]
    results = AirflowResults(version, key_name, rerun_date)
    if version == "airflow2":
        env = _airflow_env(_new_home(template, work / "scheduler"), report)
        results.scheduler = _run_scheduler(venv, env, registry, work / "scheduler.log")
    rerun_first = first_wave.pop(2)
    results.calls["rerun-1"] = rerun_first.wait()
    # The same DAG run again, in a new process: only the registry's
    # Idempotency-Key can tell it was reported already.
    rerun_again = start("rerun-2", rerun_args, rerun_env, rerun_home)
    for process in [*first_wave, rerun_again]:
        call = process.wait()
        results.calls[call.name] = call
    yield results


def _run_of(client: SyncRegistryClient, dag_id: str, dag_run_id: str) -> RunListItem:
    runs = [
        run
        for run in client.iter_runs(pipeline_name=dag_id)
        if run["pipeline_id"] == dag_run_id
    ]
    assert len(runs) == 1, f"expected one registry run for {dag_id}/{dag_run_id}, got {runs}"
    return runs[0]


def _events(client: SyncRegistryClient, run_id: str) -> List[RunEvent]:
    return list(client.iter_run_events(run_id))


def _status_path(events: List[RunEvent]) -> List[Optional[str]]:
    return [e["to_status"] for e in events if e["type"] in ("created", "status_changed")]


# -- the DAG runs themselves ---------------------------------------------------


def test_dags_run_on_their_own_merits(airflow: AirflowResults) -> None:
    """The plugin changes no outcome: the succeeding DAG succeeds, the
    failing one fails, the repeated one succeeds both times."""
    for name in ("success", "rerun-1", "rerun-2", "down", "callbacks"):
        call = airflow[name]
        if name == "callbacks":
            assert call.returncode != 0, f"{name}: its task must fail\n{call.tail()}"
        else:
            assert call.returncode == 0, f"{name} exited {call.returncode}\n{call.tail()}"
    failing = airflow["failing"]
    assert failing.returncode != 0, failing.tail()
    assert "this task always fails" in failing.output
    assert airflow["rerun-1"].dag_run_id == airflow["rerun-2"].dag_run_id
    for name, call in airflow.calls.items():
        assert "Traceback" not in call.output or "griot_registry" not in _tracebacks(call.output), (
            f"{name}: a traceback through griot_registry\n{call.tail()}"
        )


def _tracebacks(output: str) -> str:
    blocks = re.findall(r"Traceback \(most recent call last\):.*?(?=\n\S|\Z)", output, re.S)
    return "\n".join(blocks)


# -- what the registry holds ------------------------------------------------------


def test_succeeding_dag_run_is_one_completed_run(
    airflow: AirflowResults, client: SyncRegistryClient
) -> None:
    call = airflow["success"]
    run = _run_of(client, "griot_af_success", call.dag_run_id)
    assert run["status"] == "completed"
    assert run["contract_id"] == "contract-from-param"
    assert run["pipeline_name"] == "griot_af_success"
    assert run["created_by"] == airflow.key_name
    assert run["completed_at"] is not None
    assert run["heartbeat_timeout_seconds"] == 6  # three GRIOT_HEARTBEAT_SECONDS=2
    meta = run["metadata"]
    assert meta["dag_id"] == "griot_af_success"
    assert meta["dag_run_id"] == call.dag_run_id
    assert meta["run_type"] == "manual"
    assert meta["logical_date"].startswith("20")
    assert meta["airflow_state"] == "success"
    assert "failed_tasks" not in meta
    if airflow.version == "airflow3":
        assert meta["airflow_version"].startswith("3.")
        assert meta["triggered_by"] == "test"
    else:
        assert meta["airflow_version"].startswith("2.")
        assert meta["external_trigger"] is False
    # Running from its first task on, completed at the end, created once.
    events = _events(client, run["id"])
    assert _status_path(events) == ["running", "completed"]
    assert all(e["actor"] == airflow.key_name for e in events)


def test_failing_dag_run_is_one_failed_run_with_its_failed_task(
    airflow: AirflowResults, client: SyncRegistryClient
) -> None:
    call = airflow["failing"]
    run = _run_of(client, "griot_af_failing", call.dag_run_id)
    assert run["status"] == "failed"
    # Neither a param, a tag nor GRIOT_CONTRACT_ID: the dag_id.
    assert run["contract_id"] == "griot_af_failing"
    assert run["created_by"] == airflow.key_name
    meta = run["metadata"]
    assert meta["airflow_state"] == "failed"
    assert meta["airflow_msg"] == "task_failure"
    # explode has retries=1: it failed on its second try; prepare succeeded.
    assert meta["failed_tasks"] == [{"task_id": "explode", "try_number": 2}]
    assert _status_path(_events(client, run["id"])) == ["running", "failed"]


def test_heartbeats_are_sent_while_the_dag_runs(
    airflow: AirflowResults, client: SyncRegistryClient, registry: Registry
) -> None:
    """The 5 s task of griot_af_success, with GRIOT_HEARTBEAT_SECONDS=2,
    sends heartbeats (the server logs each request)."""
    run = _run_of(client, "griot_af_success", airflow["success"].dag_run_id)
    beats = registry.server_log().count(f"path=/api/v1/runs/{run['id']}/heartbeat")
    assert beats >= 1, registry.server_log()[-3000:]
    assert not [e for e in _events(client, run["id"]) if e["type"] == "heartbeat_expired"]


def test_same_dag_run_again_adds_nothing(
    airflow: AirflowResults, client: SyncRegistryClient
) -> None:
    """Two processes ran the same DAG run (same dag_id and run id): one
    registry run, created and completed once, untouched by the second."""
    dag_run_id = airflow["rerun-1"].dag_run_id
    assert dag_run_id == f"manual__{airflow.rerun_date}T00:00:00+00:00"
    run = _run_of(client, "griot_af_tagged", dag_run_id)
    assert run["status"] == "completed"
    # The tag wins over GRIOT_CONTRACT_ID, which was set for both processes.
    assert run["contract_id"] == "contract-from-tag"
    assert run["metadata"]["logical_date"] == f"{airflow.rerun_date}T00:00:00+00:00"
    events = _events(client, run["id"])
    assert _status_path(events) == ["running", "completed"]
    assert len(events) == 2, events
    assert "already completed; not reporting it again" in airflow["rerun-2"].output


def test_registry_down_does_not_hurt_the_dag(
    airflow: AirflowResults, client: SyncRegistryClient
) -> None:
    """GRIOT_URL on a closed port: the DAG run succeeds, one warning says why
    nothing is reported, and no call waits (after the first failure every
    call is skipped for 30 s)."""
    call = airflow["down"]
    assert call.returncode == 0, call.tail()
    # One warning per outage; a second only if the DAG outlived the 30 s
    # pause that follows it (a very loaded machine).
    assert 1 <= call.output.count("griot-registry: could not") <= 2, call.tail()
    assert "Connection refused" in call.output
    assert call.seconds < DOWN_MAX_SECONDS, f"{call.seconds:.1f}s"
    # It ran beside the same DAG reporting to a live registry: no slower
    # than that, give or take the noise of a shared machine.
    assert call.seconds < airflow["success"].seconds + 30, (call.seconds, airflow["success"].seconds)
    assert not [
        run
        for run in client.iter_runs(pipeline_name="griot_af_success")
        if run["pipeline_id"] == call.dag_run_id
    ]


def test_opt_in_callbacks_record_the_dag_run(
    airflow: AirflowResults, client: SyncRegistryClient
) -> None:
    """With the listener off (GRIOT_AIRFLOW_LISTENER=false), the DAG that
    opts in with dag_callbacks()/task_callbacks() is still recorded: running
    from its first task, failed at the end with the task that failed."""
    call = airflow["callbacks"]
    run = _run_of(client, "griot_af_callbacks", call.dag_run_id)
    assert run["contract_id"] == "contract-from-callbacks"
    assert run["status"] == "failed"
    assert run["created_by"] == airflow.key_name
    failed = run["metadata"]["failed_tasks"]
    assert [t["task_id"] for t in failed] == ["fails"]
    assert _status_path(_events(client, run["id"])) == ["running", "failed"]


def test_scheduler_runs_are_reported_from_start_to_end(
    airflow: AirflowResults, client: SyncRegistryClient, registry: Registry
) -> None:
    """``airflow scheduler`` (Airflow 2): each triggered DAG run is one
    registry run, created when the scheduler starts it, kept alive by the
    scheduler's heartbeats, ended by the scheduler, with the task processes
    converging on it through the Idempotency-Key."""
    if airflow.scheduler is None:
        pytest.skip("the scheduler scenario runs on Airflow 2 only (see _run_scheduler)")
    assert airflow.scheduler.finished, airflow.scheduler.log[-6000:]
    expected = {"griot_sched_success": "completed", "griot_sched_failing": "failed"}
    for dag_id, dag_run_id in SCHEDULED:
        run = _run_of(client, dag_id, dag_run_id)
        assert run["status"] == expected[dag_run_id]
        assert run["created_by"] == airflow.key_name
        assert run["metadata"]["external_trigger"] is True
        assert _status_path(_events(client, run["id"])) == ["running", expected[dag_run_id]]
        beats = registry.server_log().count(f"path=/api/v1/runs/{run['id']}/heartbeat")
        assert beats >= 1
        if dag_id == "griot_af_failing":
            assert run["metadata"]["failed_tasks"] == [{"task_id": "explode", "try_number": 2}]
