"""Record every Airflow DAG run in griot-registry, with no change to the DAGs.

Installing ``griot-registry[airflow]`` in Airflow's environment registers
:class:`GriotRegistryPlugin` through the ``airflow.plugins`` entry point. Its
listener reports each DAG run as one registry run:

* ``running`` as soon as the DAG run starts (the scheduler's
  ``on_dag_run_running``) or, where that hook never fires (``airflow dags
  test``, a scheduler without the package), when its first task starts;
* ``completed`` or ``failed`` when it ends, ``cancelled`` when someone set it
  to failed by hand (Airflow 3 reports that), with the failed tasks and their
  try numbers.

Every process (scheduler, task runner, ``dags test``) creates the run with
the same ``Idempotency-Key``, derived from the dag_id and the DAG run id, so
they all land on one registry run, and a restarted scheduler never records
a DAG run twice. While the DAG run is alive the processes that report it
send heartbeats; the run is created with ``heartbeat_timeout_seconds``, so
if they all die it goes stale and the registry fails it.

The contract is, first found: ``griot_contract_id`` in the DAG run's conf,
the DAG param ``griot_contract_id``, a DAG tag ``griot:contract=<id>``, the
``GRIOT_CONTRACT_ID`` variable, the dag_id.

Set ``GRIOT_AIRFLOW_LISTENER=false`` to turn the listener off and opt in per
DAG instead with :func:`dag_callbacks` (and :func:`task_callbacks`).

Reporting never fails or slows a DAG: calls go through
:class:`~griot_registry.integrations.Reporter`, which logs a warning when the
registry is unreachable and gives up quickly.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Mapping, Optional, Set, Tuple

import pluggy

from ..errors import ConflictError
from ..types import Run
from ._common import Reporter, Settings, compact, stable_key

try:  # Airflow 3: the Task SDK's class, importable in workers without airflow-core
    from airflow.sdk.plugins_manager import AirflowPlugin
except ImportError:  # Airflow 2
    from airflow.plugins_manager import AirflowPlugin

__all__ = [
    "CONTRACT_PARAM",
    "CONTRACT_TAG_PREFIX",
    "GriotRegistryPlugin",
    "GriotRegistryListener",
    "dag_callbacks",
    "task_callbacks",
]

logger = logging.getLogger("griot_registry.integrations.airflow")

#: The DAG param (or DAG run conf key) that names the run's contract.
CONTRACT_PARAM = "griot_contract_id"
#: A DAG tag starting with this names the run's contract: ``griot:contract=orders``.
CONTRACT_TAG_PREFIX = "griot:contract="
#: ``false``/``0``/``no``/``off`` turns the plugin's listener off.
LISTENER_ENV = "GRIOT_AIRFLOW_LISTENER"

_NAMESPACE = "airflow"
_FINAL = frozenset({"completed", "failed", "cancelled"})
#: How many ended DAG runs a process remembers (see _Tracker).
_MAX_CLOSED = 10_000
#: How Airflow 3 words a DAG run state set by a person (UI or REST API).
_MANUAL_STATE_MSG = "manually set"

# Airflow finds listener methods by this marker ("airflow" is the project
# name of its pluggy manager, in Airflow 2 and 3 alike). Making the marker
# here instead of importing Airflow's keeps one import path for both.
hookimpl = pluggy.HookimplMarker("airflow")


def _listener_enabled() -> bool:
    value = os.environ.get(LISTENER_ENV, "").strip().lower()
    return value not in {"0", "false", "no", "off"}


def _value(obj: Any) -> Any:
    """An enum's value (Airflow's states and run types are str enums), else
    the object itself, so the registry gets ``"manual"``, not
    ``"DagRunType.MANUAL"``."""
    return getattr(obj, "value", obj)


def _iso(moment: Any) -> Optional[str]:
    """A UTC ISO 8601 string for a datetime, the same whatever its type
    (pendulum in the scheduler, plain datetime in the Task SDK), because it
    is part of the create body, which must be identical in every process."""
    if not isinstance(moment, datetime):
        return None if moment is None else str(moment)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    utc = moment.astimezone(timezone.utc)
    return datetime(
        utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second, utc.microsecond,
        tzinfo=timezone.utc,
    ).isoformat()


def _safe(what: str, default: Any, getter: Callable[[], Any]) -> Any:
    """Read one Airflow attribute that may be missing in this version or
    this process (detached ORM rows raise on access)."""
    try:
        return getter()
    except Exception as error:
        logger.debug("griot-registry: could not read %s: %s", what, error)
        return default


def _param(dag: Any, name: str) -> Any:
    params = getattr(dag, "params", None)
    if params is None:
        return None
    try:
        if name not in params:
            return None
        value = params[name]
    except Exception:
        return None
    # Some versions hand back the Param itself rather than its value.
    return getattr(value, "value", value)


def resolve_contract_id(
    dag_id: str,
    dag: Any = None,
    conf: Optional[Mapping[str, Any]] = None,
    settings: Optional[Settings] = None,
) -> str:
    """The contract a DAG run reports under: ``griot_contract_id`` from the
    run's conf, else the DAG param of that name, else a tag
    ``griot:contract=<id>``, else ``GRIOT_CONTRACT_ID``, else the dag_id.

    The conf comes first because Airflow itself lets a run's conf override
    the DAG's params.
    """
    candidates: List[Any] = []
    if conf:
        candidates.append(conf.get(CONTRACT_PARAM))
    if dag is not None:
        candidates.append(_param(dag, CONTRACT_PARAM))
        tags = getattr(dag, "tags", None) or ()
        candidates.extend(
            tag[len(CONTRACT_TAG_PREFIX):]
            for tag in sorted(str(t) for t in tags)
            if tag.startswith(CONTRACT_TAG_PREFIX)
        )
    candidates.append((settings or Settings.from_env()).contract_id)
    for candidate in candidates:
        if isinstance(candidate, str) and candidate.strip():
            return candidate.strip()
    return dag_id


@dataclass(frozen=True)
class RunFacts:
    """What identifies a DAG run, read the same way in every process.

    Only these go into the create request: every process that creates the
    run must send the very same body, or the registry refuses the repeated
    ``Idempotency-Key``.
    """

    dag_id: str
    run_id: str
    contract_id: str
    logical_date: Optional[str]
    run_type: Optional[str]

    @property
    def key(self) -> Tuple[str, str]:
        return (self.dag_id, self.run_id)

    @property
    def idempotency_key(self) -> str:
        return stable_key(_NAMESPACE, self.dag_id, self.run_id)

    def create_fields(self, settings: Settings) -> Dict[str, Any]:
        return {
            "contract_id": self.contract_id,
            "pipeline_name": self.dag_id,
            "pipeline_id": self.run_id,
            "status": "running",
            "metadata": compact(
                {
                    "source": "airflow",
                    "dag_id": self.dag_id,
                    "dag_run_id": self.run_id,
                    "logical_date": self.logical_date,
                    "run_type": self.run_type,
                }
            ),
            "heartbeat_timeout_seconds": settings.heartbeat_timeout_seconds,
            "idempotency_key": self.idempotency_key,
        }


def _dag_run_facts(dag_run: Any, dag: Any, settings: Settings) -> RunFacts:
    """Facts from a DAG run: the scheduler's ORM row or the Task SDK's model."""
    dag_id = str(dag_run.dag_id)
    conf = _safe("the DAG run's conf", None, lambda: dag_run.conf)
    logical = _safe(
        "the logical date",
        None,
        lambda: getattr(dag_run, "logical_date", None) or getattr(dag_run, "execution_date", None),
    )
    return RunFacts(
        dag_id=dag_id,
        run_id=str(dag_run.run_id),
        contract_id=resolve_contract_id(
            dag_id, dag, conf if isinstance(conf, Mapping) else None, settings
        ),
        logical_date=_iso(logical),
        run_type=_safe("the run type", None, lambda: _value(dag_run.run_type)),
    )


def _dag_of_run(dag_run: Any) -> Any:
    # The scheduler and DAG.test() attach the (serialized) DAG to the run.
    return _safe("the DAG of the run", None, lambda: getattr(dag_run, "dag", None))


def _dag_run_of_task(task_instance: Any) -> Any:
    """The DAG run of a task instance: a relationship on Airflow 2's ORM row,
    the template context's ``dag_run`` in Airflow 3's task runner."""
    dag_run = _safe("the task's DAG run", None, lambda: getattr(task_instance, "dag_run", None))
    if dag_run is not None:
        return dag_run
    get_context = getattr(task_instance, "get_template_context", None)
    if get_context is None:
        return None
    return _safe("the task's context", None, lambda: get_context().get("dag_run"))


def _failed_tasks(dag_run: Any) -> List[Dict[str, Any]]:
    """The DAG run's failed task instances and the try that failed, read from
    the metadata DB with the session the DAG run belongs to (the caller's
    transaction; a second session could wait on SQLite's lock)."""
    try:
        from sqlalchemy.orm import object_session

        session = object_session(dag_run)
        tis = (
            dag_run.get_task_instances(session=session)
            if session is not None
            else dag_run.get_task_instances()
        )
    except Exception as error:
        logger.debug("griot-registry: could not read the failed tasks: %s", error)
        return []
    failed = []
    for ti in tis:
        if _value(getattr(ti, "state", None)) != "failed":
            continue
        entry: Dict[str, Any] = {"task_id": ti.task_id, "try_number": ti.try_number}
        map_index = getattr(ti, "map_index", -1)
        if isinstance(map_index, int) and map_index >= 0:
            entry["map_index"] = map_index
        failed.append(entry)
    return sorted(failed, key=lambda item: (item["task_id"], item.get("map_index", -1)))


def _airflow_version() -> Optional[str]:
    try:
        from importlib.metadata import version

        return version("apache-airflow")
    except Exception:
        return None


class _AirflowReporter(Reporter):
    def beat(self, run_id: str) -> bool:
        """Send a heartbeat; ``False`` when the registry says the run is
        final (another process or a person ended it), so it is not beaten
        again. An unreachable registry is not a reason to stop."""

        def call(client: Any) -> bool:
            try:
                client.heartbeat(run_id)
            except ConflictError:
                return False
            return True

        return self._call(f"send a heartbeat for run {run_id}", call) is not False

    def find_run(self, facts: RunFacts) -> Optional[str]:
        """The registry run of a DAG run, looked up by dag_id and run id:
        the way back to it when a create with the DAG run's key is refused
        because another process sent a different body (another contract,
        another heartbeat setting)."""
        page = self._call(
            f"look up the run of {facts.dag_id}/{facts.run_id}",
            lambda c: c.list_runs(pipeline_name=facts.dag_id, limit=200),
        )
        for item in page["items"] if page is not None else []:
            if item.get("pipeline_id") == facts.run_id:
                return str(item["id"])
        return None


class _Heartbeats:
    """One daemon thread per process beats for every live run it holds.

    A scheduler may have many DAG runs going at once; one thread for all of
    them, instead of one each, keeps that cheap. A run is held for reasons
    (the scheduler started it, a task of it ran here) and beaten while any
    reason remains, and until the registry answers that it is final. A hold may come with a
    ``still_live`` check, asked after each heartbeat; ``False`` ends the
    hold.
    """

    def __init__(self, reporter: _AirflowReporter, interval: float) -> None:
        self._reporter = reporter
        self._interval = interval
        self._held: Dict[str, Set[str]] = {}
        self._checks: Dict[str, Callable[[], bool]] = {}
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None

    def hold(
        self, run_id: str, reason: str, still_live: Optional[Callable[[], bool]] = None
    ) -> None:
        with self._lock:
            self._held.setdefault(run_id, set()).add(reason)
            if still_live is not None:
                self._checks[run_id] = still_live
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._beat, name="griot-registry-heartbeats", daemon=True
                )
                self._thread.start()

    def release(self, run_id: str, reason: Optional[str] = None) -> None:
        """Drop one reason to beat for the run, or all of them."""
        with self._lock:
            reasons = self._held.get(run_id)
            if reasons is None:
                return
            if reason is None:
                reasons.clear()
            else:
                reasons.discard(reason)
            if not reasons:
                del self._held[run_id]
                self._checks.pop(run_id, None)

    def _beat(self) -> None:
        stop = threading.Event()  # never set: a daemon thread ends with its process
        while not stop.wait(self._interval):
            with self._lock:
                held = [(run_id, self._checks.get(run_id)) for run_id in self._held]
            for run_id, still_live in held:
                if not self._reporter.beat(run_id):
                    self.release(run_id)
                elif still_live is not None and not _safe("a DAG run's state", True, still_live):
                    self.release(run_id)


class _Tracker:
    """What one process knows about the DAG runs it reports: their registry
    ids, which ones it has closed, and its heartbeats.

    Kept per process id: Airflow 2 forks task processes, and a child must not
    share its parent's connections or (dead) heartbeat thread.
    """

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.settings = Settings.from_env()
        self.reporter = _AirflowReporter(self.settings)
        self.heartbeats = _Heartbeats(self.reporter, self.settings.heartbeat_seconds)
        self._runs: Dict[Tuple[str, str], str] = {}
        # Insertion-ordered, trimmed to the newest _MAX_CLOSED, so a scheduler
        # that runs for months does not keep every DAG run it ever ended.
        self._closed: Dict[Tuple[str, str], None] = {}
        self._lock = threading.Lock()

    def _close(self, key: Tuple[str, str]) -> None:
        with self._lock:
            self._runs.pop(key, None)
            self._closed[key] = None
            while len(self._closed) > _MAX_CLOSED:
                del self._closed[next(iter(self._closed))]

    def ensure_run(self, facts: RunFacts) -> Optional[str]:
        """The registry id of the DAG run's run, created (``running``) if no
        process did yet; ``None`` when the registry cannot be reached or the
        run is already final, so nothing more is sent about it."""
        with self._lock:
            if facts.key in self._closed:
                return None
            known = self._runs.get(facts.key)
        if known is not None:
            return known
        run: Optional[Run] = self.reporter.create_run(**facts.create_fields(self.settings))
        run_id: Optional[str]
        if run is not None:
            run_id = run["id"]
            if run["status"] in _FINAL:
                # The same DAG run, run again (DAG.test() with its logical
                # date, a cleared run within the key's 24 h): the registry
                # already holds its outcome; leave it alone.
                logger.info(
                    "griot-registry: run %s of %s/%s is already %s; not reporting it again",
                    run_id, facts.dag_id, facts.run_id, run["status"],
                )
                self._close(facts.key)
                return None
        else:
            run_id = self.reporter.find_run(facts)
        if run_id is not None:
            with self._lock:
                self._runs[facts.key] = run_id
        return run_id

    def finish(self, facts: RunFacts, status: str, metadata: Mapping[str, Any]) -> None:
        run_id = self.ensure_run(facts)
        self._close(facts.key)
        if run_id is None:
            return
        self.heartbeats.release(run_id)
        self.reporter.update_run(run_id, status=status, metadata=compact(metadata))


_tracker: Optional[_Tracker] = None
_tracker_lock = threading.Lock()


def _state() -> _Tracker:
    global _tracker
    with _tracker_lock:
        if _tracker is None or _tracker.pid != os.getpid():
            _tracker = _Tracker()
        return _tracker


def _final_status(state: str, msg: Optional[str]) -> str:
    if state == "success":
        return "completed"
    if msg and _MANUAL_STATE_MSG in msg:
        return "cancelled"
    return "failed"


def _final_metadata(dag_run: Any, state: str, msg: Optional[str]) -> Dict[str, Any]:
    """What is known once a DAG run ends, merged into the run's metadata."""
    triggered_by = _safe("triggered_by", None, lambda: getattr(dag_run, "triggered_by", None))
    external = _safe("external_trigger", None, lambda: getattr(dag_run, "external_trigger", None))
    start = _safe("start_date", None, lambda: dag_run.start_date)
    end = _safe("end_date", None, lambda: dag_run.end_date)
    return {
        "airflow_state": state,
        "airflow_msg": msg or None,
        "airflow_version": _airflow_version(),
        # Airflow 3 says who or what triggered the run; Airflow 2 only
        # whether it came from outside the scheduler.
        "triggered_by": None if triggered_by is None else str(_value(triggered_by)),
        "triggering_user": _safe(
            "triggering_user_name", None, lambda: getattr(dag_run, "triggering_user_name", None)
        ),
        "external_trigger": external if isinstance(external, bool) else None,
        "dag_run_start_date": _iso(start),
        "dag_run_end_date": _iso(end),
        "failed_tasks": _failed_tasks(dag_run) if state != "success" else None,
    }


def _report_dag_run_end(dag_run: Any, state: str, msg: Optional[str], dag: Any = None) -> None:
    tracker = _state()
    facts = _dag_run_facts(dag_run, dag if dag is not None else _dag_of_run(dag_run), tracker.settings)
    tracker.finish(facts, _final_status(state, msg), _final_metadata(dag_run, state, msg))


#: The ``msg`` given when a heartbeat finds a DAG run ended without a
#: listener call: Airflow 2 calls none when a person marks a run.
_FOUND_ENDED_MSG = "state manually set (found ended by griot-registry's heartbeat)"


def _still_running(dag_id: str, dag_run_id: str) -> Callable[[], bool]:
    """A check for the scheduler's heartbeat thread: is the DAG run still
    going? When it ended without the listener hearing of it (Airflow 2
    calls no listener when a person marks a run success or failed), report
    its end now and say no, instead of beating for it forever."""

    def still_running() -> bool:
        from airflow.models.dagrun import DagRun
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            dag_run = session.scalars(
                select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == dag_run_id)
            ).one_or_none()
            if dag_run is None:  # deleted: stop beating; the registry fails it as stale
                return False
            state = str(_value(dag_run.state))
            if state in ("success", "failed"):
                _report_dag_run_end(dag_run, state, _FOUND_ENDED_MSG)
                return False
        return True

    return still_running


def _guard(what: str, call: Callable[[], None]) -> None:
    """Run one report; whatever goes wrong is logged, never raised into
    Airflow."""
    try:
        call()
    except Exception:
        logger.warning("griot-registry: could not report %s", what, exc_info=True)


class GriotRegistryListener:
    """Airflow listener hooks that report DAG runs (see the module's doc).

    Each hook takes only the arguments it needs: Airflow 2 passes a
    ``session`` that Airflow 3 does not, and pluggy hands a hook only the
    arguments it names.
    """

    @hookimpl
    def on_dag_run_running(self, dag_run: Any, msg: str) -> None:
        if not _listener_enabled():
            return

        def report() -> None:
            tracker = _state()
            facts = _dag_run_facts(dag_run, _dag_of_run(dag_run), tracker.settings)
            run_id = tracker.ensure_run(facts)
            if run_id is not None:
                tracker.heartbeats.hold(
                    run_id, "dagrun", _still_running(facts.dag_id, facts.run_id)
                )

        _guard("a DAG run's start", report)

    @hookimpl
    def on_dag_run_success(self, dag_run: Any, msg: str) -> None:
        if _listener_enabled():
            _guard("a DAG run's success", lambda: _report_dag_run_end(dag_run, "success", msg))

    @hookimpl
    def on_dag_run_failed(self, dag_run: Any, msg: str) -> None:
        if _listener_enabled():
            _guard("a DAG run's failure", lambda: _report_dag_run_end(dag_run, "failed", msg))

    @hookimpl
    def on_task_instance_running(self, previous_state: Any, task_instance: Any) -> None:
        """Creates the run when the DAG-run hook did not fire in any process
        (``dags test``; a scheduler without this package), and keeps it
        alive while this process lives.

        A task process (Airflow 3's task runner, Airflow 2's raw task) ends
        with its task, so its heartbeats stop then; ``DAG.test()`` runs every
        task in one process, whose heartbeats then span the whole DAG run,
        the gaps between tasks included, until ``on_dag_run_*`` ends it.
        """
        if _listener_enabled():
            _guard("a task's start", lambda: _task_started(task_instance))


def _task_facts(task_instance: Any, tracker: _Tracker) -> Optional[RunFacts]:
    dag_run = _dag_run_of_task(task_instance)
    if dag_run is None:
        return None
    task = _safe("the task", None, lambda: task_instance.task)
    dag = _safe("the task's DAG", None, lambda: task.dag) if task is not None else None
    return _dag_run_facts(dag_run, dag, tracker.settings)


def _task_started(task_instance: Any) -> None:
    tracker = _state()
    facts = _task_facts(task_instance, tracker)
    if facts is None:
        return
    run_id = tracker.ensure_run(facts)
    if run_id is not None:
        tracker.heartbeats.hold(run_id, "task-process")


class GriotRegistryPlugin(AirflowPlugin):
    """The plugin Airflow loads from the ``airflow.plugins`` entry point."""

    name = "griot_registry"
    listeners = [GriotRegistryListener()]


# -- opt-in callbacks ---------------------------------------------------------

Context = Mapping[str, Any]


def dag_callbacks(contract_id: Optional[str] = None) -> Dict[str, Callable[[Context], None]]:
    """DAG-level callbacks that record the DAG run when it ends, for DAGs
    that opt in rather than rely on the plugin's listener::

        DAG("orders", ..., **dag_callbacks(contract_id="orders"))

    ``contract_id`` overrides the param/tag/environment lookup. With the
    listener also on, both report to the same registry run. Airflow has no
    DAG-level "started" callback: add :func:`task_callbacks` to
    ``default_args`` to see the run ``running`` from its first task on.
    """

    def on_success(context: Context) -> None:
        _guard("a DAG run's success", lambda: _callback_end(context, "success", contract_id))

    def on_failure(context: Context) -> None:
        _guard("a DAG run's failure", lambda: _callback_end(context, "failed", contract_id))

    return {"on_success_callback": on_success, "on_failure_callback": on_failure}


def task_callbacks(contract_id: Optional[str] = None) -> Dict[str, Callable[[Context], None]]:
    """Task-level callbacks for ``default_args`` that create the run
    (``running``) when a task starts: ``default_args={**task_callbacks()}``."""

    def on_execute(context: Context) -> None:
        def report() -> None:
            tracker = _state()
            facts = _context_facts(context, contract_id, tracker)
            if facts is not None:
                tracker.ensure_run(facts)

        _guard("a task's start", report)

    return {"on_execute_callback": on_execute}


def _context_facts(
    context: Context, contract_id: Optional[str], tracker: _Tracker
) -> Optional[RunFacts]:
    dag_run = context.get("dag_run")
    if dag_run is None:
        return None
    facts = _dag_run_facts(dag_run, context.get("dag"), tracker.settings)
    if contract_id:
        facts = RunFacts(
            facts.dag_id, facts.run_id, contract_id, facts.logical_date, facts.run_type
        )
    return facts


def _callback_end(context: Context, state: str, contract_id: Optional[str]) -> None:
    tracker = _state()
    facts = _context_facts(context, contract_id, tracker)
    if facts is None:
        return
    dag_run = context["dag_run"]
    metadata = _final_metadata(dag_run, state, str(context.get("reason") or "") or None)
    if state != "success" and not metadata.get("failed_tasks"):
        # In Airflow 3 the callback gets the Task SDK's DAG run, without DB
        # access; the failing task instance is in the context.
        ti = context.get("ti") or context.get("task_instance")
        if ti is not None:
            metadata["failed_tasks"] = [
                {"task_id": ti.task_id, "try_number": _safe("try_number", None, lambda: ti.try_number)}
            ]
    tracker.finish(facts, _final_status(state, None), metadata)
