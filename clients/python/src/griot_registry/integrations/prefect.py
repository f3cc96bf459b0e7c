"""Record every Prefect flow run in griot-registry with one line on ``@flow``::

    from prefect import flow
    from griot_registry.integrations.prefect import griot_hooks

    @flow(**griot_hooks(contract_id="orders"))
    def nightly_orders(day: str) -> None:
        ...

Why hooks and not a ``try``/``except`` in the flow body: a flow that times out,
is cancelled or crashes never reaches the body's ``except Exception`` (a
cancellation or crash arrives as a ``BaseException``, or kills the process and
is handled by the Prefect runner elsewhere). Prefect's state hooks are called
in every one of those cases, by the engine or by the runner, so the registry
run always ends in a final status:

============================  ==================  ===========================
Prefect state                 hook                registry status
============================  ==================  ===========================
Running                       ``on_running``      ``running`` (created)
Completed                     ``on_completion``   ``completed``
Failed, TimedOut              ``on_failure``      ``failed``
Cancelling (then Cancelled)   ``on_cancellation`` ``cancelled``
Crashed                       ``on_crashed``      ``failed``
============================  ==================  ===========================

What is recorded: ``pipeline_name`` is the flow's name, ``pipeline_id`` the
flow run's id (unique per execution; the run's name is in the metadata), and
the metadata holds ``prefect_version``, ``flow_run_name``, the *names* of the
flow's parameters (never their values: parameters routinely carry passwords,
tokens and connection strings), the deployment id and tags when there are any.
A final update adds ``prefect_state`` (``Completed``, ``Failed``,
``TimedOut``, ``Cancelling``, ``Crashed``...), ``prefect_state_message``, and
for failures ``error_type`` and ``error_message``.

The hooks hold no state that must survive between them: when a final hook
runs in another process than ``on_running`` did (the Prefect runner runs
``on_cancellation`` and ``on_crashed`` hooks itself after killing a flow
run's process), it finds the registry run again by re-sending the create
request with the same ``Idempotency-Key``, derived from the flow run id, which
the registry answers with the run it already holds. The same happens when the
registry was unreachable when the flow started and is back when it ends: the
run is then recorded late rather than not at all.

While the flow runs, a daemon thread sends heartbeats (every
``GRIOT_HEARTBEAT_SECONDS``, default 60), and the run is created with a
heartbeat timeout of three intervals, so a flow whose process dies without any
hook running (``kill -9`` outside a runner, a lost machine) is failed by the
registry instead of staying ``running`` forever.

Nothing here can fail or hold up the flow: every call goes through
:class:`~griot_registry.integrations.Reporter`, which never raises, uses short
timeouts and, once the registry could not be reached, skips calls for a while
with a single warning.

Known gap: a flow *returning* a ``Cancelled`` state itself is not reported as
cancelled, because Prefect calls no hook for it (``on_cancellation`` only
follows a ``Cancelling`` state); that registry run is failed by the heartbeat
timeout.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from ._common import Heartbeater, Reporter, Settings, stable_key

__all__ = ["GriotFlowHooks", "griot_hooks", "FlowHook"]

logger = logging.getLogger("griot_registry.integrations.prefect")

#: What Prefect calls a flow state hook: ``hook(flow, flow_run, state)``.
FlowHook = Callable[[Any, Any, Any], Any]

#: Error messages are cut to this many characters: a registry run is not a log
#: store, and some exceptions print whole payloads.
MAX_ERROR_MESSAGE = 2000

_HOOK_KINDS = ("on_running", "on_completion", "on_failure", "on_cancellation", "on_crashed")


@dataclass
class _Active:
    run_id: str
    heartbeater: Optional[Heartbeater]


# Process-wide state, kept out of the hook objects so that those stay small
# and picklable (Prefect may ship a flow, hooks included, to another process).
_lock = threading.Lock()
_reporters: Dict[Settings, Reporter] = {}
_active: Dict[str, _Active] = {}
_warned_no_contract: Dict[str, bool] = {}


def _reporter(settings: Settings) -> Reporter:
    """One reporter per settings, shared by all flow runs of the process, so
    the reporter's outage back-off covers them all."""
    with _lock:
        reporter = _reporters.get(settings)
        if reporter is None:
            reporter = _reporters[settings] = Reporter(settings)
        return reporter


def _prefect_version() -> Optional[str]:
    try:
        from importlib.metadata import version

        return version("prefect")
    except Exception:
        return None


def _text(value: Any) -> Optional[str]:
    return None if value is None else str(value)


def _exception_of(state: Any) -> Optional[BaseException]:
    """The exception a failed or crashed state carries, read from memory only:
    loading a persisted result could be slow or fail, and a hook must not."""
    data = getattr(state, "data", None)
    if isinstance(data, BaseException):
        return data
    held = getattr(data, "result", None)  # a result record holding the exception
    if isinstance(held, BaseException):
        return held
    return None


def _error_fields(state: Any) -> Dict[str, Any]:
    error = _exception_of(state)
    if error is not None:
        error_type = type(error).__name__
        message = str(error) or _text(getattr(state, "message", None)) or error_type
    else:
        # Without the exception (the runner process, a state read back from
        # the API) the state's name and message are all there is.
        error_type = _text(getattr(state, "name", None)) or "Failed"
        message = _text(getattr(state, "message", None)) or error_type
    return {"error_type": error_type, "error_message": message[:MAX_ERROR_MESSAGE]}


class _Hook:
    """One of the five hooks, as a named picklable callable (Prefect logs a
    hook by its ``__name__``)."""

    __slots__ = ("_owner", "_kind")

    def __init__(self, owner: GriotFlowHooks, kind: str) -> None:
        self._owner = owner
        self._kind = kind

    @property
    def __name__(self) -> str:
        return f"griot_registry_{self._kind}"

    def __call__(self, flow: Any, flow_run: Any, state: Any) -> None:
        try:
            getattr(self._owner, self._kind)(flow, flow_run, state)
        except Exception as error:  # Prefect logs hook errors loudly; ours must be quiet
            logger.warning("griot-registry: the %s hook failed: %s", self._kind, error)

    def __getstate__(self) -> Tuple[GriotFlowHooks, str]:
        return (self._owner, self._kind)

    def __setstate__(self, state: Tuple[GriotFlowHooks, str]) -> None:
        self._owner, self._kind = state

    def __repr__(self) -> str:
        return f"<griot-registry Prefect hook {self._kind}>"


class GriotFlowHooks:
    """The five flow state hooks that report one flow's runs.

    ``contract_id`` defaults to ``GRIOT_CONTRACT_ID``; without either, runs
    are not recorded (with one warning per flow). ``settings`` default to
    :meth:`Settings.from_env`, read when a hook runs, so the environment of
    the process that runs the flow is the one that counts.

    Use :func:`griot_hooks` to wire them; wire them by hand with the
    attributes :attr:`running`, :attr:`completion`, :attr:`failure`,
    :attr:`cancellation` and :attr:`crashed`.
    """

    def __init__(self, contract_id: Optional[str] = None, *, settings: Optional[Settings] = None) -> None:
        self.contract_id = contract_id
        self.settings = settings
        self.running: FlowHook = _Hook(self, "on_running")
        self.completion: FlowHook = _Hook(self, "on_completion")
        self.failure: FlowHook = _Hook(self, "on_failure")
        self.cancellation: FlowHook = _Hook(self, "on_cancellation")
        self.crashed: FlowHook = _Hook(self, "on_crashed")

    def __repr__(self) -> str:
        return f"GriotFlowHooks(contract_id={self.contract_id!r})"

    # -- the hooks -----------------------------------------------------------

    def on_running(self, flow: Any, flow_run: Any, state: Any) -> None:
        """Create the registry run and start its heartbeats. Called again when
        a flow is retried: the same flow run id gives the same run back."""
        settings = self._settings()
        key = str(flow_run.id)
        with _lock:
            already = key in _active
        run_id = self._ensure_run(settings, flow, flow_run)
        if run_id is None or already:
            return
        heartbeater = Heartbeater(_reporter(settings), run_id, settings.heartbeat_seconds).start()
        with _lock:
            previous = _active.get(key)
            _active[key] = _Active(run_id, heartbeater)
        if previous is not None and previous.heartbeater is not None:
            previous.heartbeater.stop()
        logger.debug("griot-registry: flow run %s is registry run %s", key, run_id)

    def on_completion(self, flow: Any, flow_run: Any, state: Any) -> None:
        self._finish(flow, flow_run, state, "completed", {})

    def on_failure(self, flow: Any, flow_run: Any, state: Any) -> None:
        """Failed and TimedOut (a timeout is a failure with its own state
        name, kept in ``prefect_state``)."""
        self._finish(flow, flow_run, state, "failed", _error_fields(state))

    def on_cancellation(self, flow: Any, flow_run: Any, state: Any) -> None:
        self._finish(flow, flow_run, state, "cancelled", {})

    def on_crashed(self, flow: Any, flow_run: Any, state: Any) -> None:
        """A crash (the process was killed, ``SystemExit``, an infrastructure
        error) is a failure for the registry; ``prefect_state`` says Crashed."""
        self._finish(flow, flow_run, state, "failed", _error_fields(state))

    # -- helpers -------------------------------------------------------------

    def _settings(self) -> Settings:
        return self.settings or Settings.from_env()

    def _contract(self, settings: Settings, flow: Any) -> Optional[str]:
        contract = self.contract_id or settings.contract_id
        if contract is None:
            name = str(getattr(flow, "name", "?"))
            with _lock:
                first = not _warned_no_contract.get(name)
                _warned_no_contract[name] = True
            if first:
                logger.warning(
                    "griot-registry: flow %r has no contract id (pass contract_id= to "
                    "griot_hooks or set GRIOT_CONTRACT_ID); its runs are not recorded",
                    name,
                )
        return contract

    def _ensure_run(self, settings: Settings, flow: Any, flow_run: Any) -> Optional[str]:
        """The registry run of this flow run, created if need be.

        Every field sent is derived from the flow and the flow run alone (no
        clock, no process state), so a second call, from any process, sends
        the very same request under the same key and gets the same run back.
        """
        contract = self._contract(settings, flow)
        if contract is None:
            return None
        run = _reporter(settings).create_run(
            contract_id=contract,
            pipeline_name=str(flow.name),
            pipeline_id=str(flow_run.id),
            status="running",
            metadata=_run_metadata(flow_run),
            heartbeat_timeout_seconds=settings.heartbeat_timeout_seconds,
            idempotency_key=stable_key("prefect", contract, flow_run.id),
        )
        return None if run is None else str(run["id"])

    def _finish(
        self, flow: Any, flow_run: Any, state: Any, status: str, extra: Mapping[str, Any]
    ) -> None:
        settings = self._settings()
        with _lock:
            active = _active.pop(str(flow_run.id), None)
        if active is not None:
            if active.heartbeater is not None:
                active.heartbeater.stop()
            run_id: Optional[str] = active.run_id
        else:
            run_id = self._ensure_run(settings, flow, flow_run)
        if run_id is None:
            return
        metadata: Dict[str, Any] = {"prefect_state": _text(getattr(state, "name", None))}
        message = _text(getattr(state, "message", None))
        if message:
            metadata["prefect_state_message"] = message[:MAX_ERROR_MESSAGE]
        metadata.update(extra)
        _reporter(settings).update_run(run_id, status=status, metadata=metadata)


def _run_metadata(flow_run: Any) -> Dict[str, Any]:
    metadata: Dict[str, Any] = {
        "orchestrator": "prefect",
        "prefect_version": _prefect_version(),
        "flow_run_name": _text(getattr(flow_run, "name", None)),
        # Names only: values may be secrets, and need not be JSON.
        "parameter_names": sorted(str(name) for name in (getattr(flow_run, "parameters", None) or {})),
    }
    deployment = getattr(flow_run, "deployment_id", None)
    if deployment is not None:
        metadata["deployment_id"] = str(deployment)
    tags = getattr(flow_run, "tags", None)
    if tags:
        metadata["tags"] = sorted(str(tag) for tag in tags)
    return {key: value for key, value in metadata.items() if value is not None}


def griot_hooks(
    contract_id: Optional[str] = None,
    *,
    settings: Optional[Settings] = None,
    on_running: Sequence[FlowHook] = (),
    on_completion: Sequence[FlowHook] = (),
    on_failure: Sequence[FlowHook] = (),
    on_cancellation: Sequence[FlowHook] = (),
    on_crashed: Sequence[FlowHook] = (),
) -> Dict[str, List[FlowHook]]:
    """The keyword arguments for ``@flow`` that record its runs:
    ``@flow(**griot_hooks(contract_id="orders"))``.

    A flow's own hooks go through here, because ``@flow`` takes each hook
    list once: ``@flow(**griot_hooks("orders", on_failure=[page_someone]))``.
    They run after the registry's, which never raise.
    """
    hooks = GriotFlowHooks(contract_id, settings=settings)
    yours: Dict[str, Sequence[FlowHook]] = {
        "on_running": on_running,
        "on_completion": on_completion,
        "on_failure": on_failure,
        "on_cancellation": on_cancellation,
        "on_crashed": on_crashed,
    }
    ours: Dict[str, FlowHook] = {
        "on_running": hooks.running,
        "on_completion": hooks.completion,
        "on_failure": hooks.failure,
        "on_cancellation": hooks.cancellation,
        "on_crashed": hooks.crashed,
    }
    return {kind: [ours[kind], *yours[kind]] for kind in _HOOK_KINDS}
