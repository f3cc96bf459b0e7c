"""``run_context``: wrap a block of pipeline code in a registry run.

One function serves both clients::

    with run_context(sync_client, "orders") as run:          # SyncRegistryClient
        ...

    async with run_context(async_client, "orders") as run:   # RegistryClient
        ...

On entry a run is created with status ``running`` and the run dict is
yielded. When the block ends normally the run is marked ``completed``. When
it raises an ``Exception`` the run is marked ``failed`` with the metadata
``{"error_type": <class name>, "error_message": str(exc)}`` and the exception
propagates unchanged. When it is interrupted instead (``KeyboardInterrupt``,
``SystemExit``, task cancellation, a generator being closed) the run is
marked ``cancelled`` with the same metadata, and the interruption propagates.

If the block itself already moved the run to a final status (for example
``client.update_run(run["id"], status="cancelled")``), that status is kept:
the registry refuses to leave a final status and ``run_context`` accepts
that. If marking the run failed or cancelled does not work (the registry is
down), a warning is logged on the ``griot_registry`` logger and the original
exception still propagates; if marking it completed does not work, that
error is raised.

With ``heartbeat_timeout_seconds`` the run is created with that timeout, and
heartbeats are sent every ``heartbeat_interval`` seconds (by default a third
of the timeout, at least 1 s) while the block runs: from a daemon thread for
the sync client, from a task for the async one. They stop before the run is
marked at the end. A heartbeat answered 409 (the run is already final, for
example failed by the server) ends them quietly; any other failure is logged
as a warning and the next heartbeat is sent on schedule. The block itself is
never interrupted by a heartbeat problem.
"""

from __future__ import annotations

import inspect
import logging
import threading
from types import TracebackType
from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional, Type, Union, overload

import anyio
import anyio.abc

from .async_client import RegistryClient
from .client import SyncRegistryClient
from .errors import ConflictError
from .types import Run

__all__ = ["run_context", "async_run_context", "SyncRunContext", "AsyncRunContext"]

logger = logging.getLogger("griot_registry")


def _error_metadata(exc: BaseException) -> Dict[str, Any]:
    return {"error_type": type(exc).__name__, "error_message": str(exc)}


def _final_status(exc: BaseException) -> str:
    return "failed" if isinstance(exc, Exception) else "cancelled"


#: The shortest default interval between heartbeats, in seconds.
MIN_HEARTBEAT_INTERVAL = 1.0


def _heartbeat_interval(
    timeout: Optional[int], interval: Optional[float]
) -> Optional[float]:
    """Seconds between heartbeats, or ``None`` for no heartbeats."""
    if timeout is None:
        if interval is not None:
            raise ValueError(
                "heartbeat_interval needs heartbeat_timeout_seconds: without a "
                "timeout the registry does not expect heartbeats"
            )
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 1:
        raise ValueError(
            f"heartbeat_timeout_seconds must be a whole number of seconds >= 1, not {timeout!r}"
        )
    if interval is None:
        return max(MIN_HEARTBEAT_INTERVAL, timeout / 3)
    if isinstance(interval, bool) or not isinstance(interval, (int, float)):
        raise TypeError(f"heartbeat_interval must be a number of seconds, not {interval!r}")
    if not 0 < interval < timeout:
        raise ValueError(
            f"heartbeat_interval must be more than 0 and less than "
            f"heartbeat_timeout_seconds ({timeout}), not {interval!r}"
        )
    return float(interval)


class _Heartbeats:
    """What the thread and the task that send a run's heartbeats share."""

    def __init__(self, client: Any, run_id: str, interval: float) -> None:
        self.client = client
        self.run_id = run_id
        self.interval = interval

    def _failed(self, err: Exception) -> bool:
        """Log a failed heartbeat; ``True`` when heartbeats should stop."""
        if isinstance(err, ConflictError):
            logger.info("run %s is no longer live; heartbeats stop: %s", self.run_id, err)
            return True
        logger.warning(
            "heartbeat for run %s failed, next try in %g s: %s", self.run_id, self.interval, err
        )
        return False


class _HeartbeatThread(_Heartbeats):
    """Sends heartbeats for a run from a daemon thread until stopped."""

    def __init__(self, client: Any, run_id: str, interval: float) -> None:
        super().__init__(client, run_id, interval)
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, name=f"griot-registry-heartbeat-{run_id}", daemon=True
        )
        self._thread.start()

    def _beat(self) -> None:
        while not self._stopping.wait(self.interval):
            try:
                self.client.heartbeat(self.run_id)
            except Exception as err:
                if self._failed(err):
                    return

    def stop(self) -> None:
        """Stop at once, or right after a heartbeat already under way."""
        self._stopping.set()
        self._thread.join()


class _HeartbeatTask(_Heartbeats):
    """Sends heartbeats for a run from a task (asyncio or trio) until
    stopped. The task group is entered in ``__aenter__`` of the run context
    and left in its ``__aexit__``, in the same task, around the block."""

    def __init__(self, client: Any, run_id: str, interval: float) -> None:
        super().__init__(client, run_id, interval)
        self._group: Optional[anyio.abc.TaskGroup] = None

    async def start(self) -> None:
        group = anyio.create_task_group()
        await group.__aenter__()
        self._group = group
        group.start_soon(self._beat)

    async def _beat(self) -> None:
        while True:
            await anyio.sleep(self.interval)
            try:
                await self.client.heartbeat(self.run_id)
            except Exception as err:
                if self._failed(err):
                    return

    async def stop(self) -> None:
        """Cancel the task, even in the middle of a heartbeat, and wait for
        it to end. Raises the cancellation if the calling task is itself
        being cancelled."""
        group, self._group = self._group, None
        if group is not None:
            group.cancel_scope.cancel()
            # Leave the group as if the block had ended normally: its
            # exception, if any, is the run context's to handle, and giving it
            # to the task group would wrap it in an exception group.
            await group.__aexit__(None, None, None)


class _RunContextBase:
    def __init__(
        self,
        client: Any,
        contract_id: str,
        pipeline_name: Optional[str],
        pipeline_id: Optional[str],
        metadata: Optional[Mapping[str, Any]],
        heartbeat_timeout_seconds: Optional[int] = None,
        heartbeat_interval: Optional[float] = None,
    ) -> None:
        self.client = client
        self.contract_id = contract_id
        self.pipeline_name = pipeline_name
        self.pipeline_id = pipeline_id
        self.metadata = metadata
        self.heartbeat_timeout_seconds = heartbeat_timeout_seconds
        #: Seconds between heartbeats; ``None`` when the run has no timeout.
        self.heartbeat_interval = _heartbeat_interval(
            heartbeat_timeout_seconds, heartbeat_interval
        )
        #: The run as created; ``None`` until the block is entered.
        self.run: Optional[Run] = None

    def _create_kwargs(self) -> Dict[str, Any]:
        kwargs: Dict[str, Any] = {
            "contract_id": self.contract_id,
            "pipeline_name": self.pipeline_name,
            "pipeline_id": self.pipeline_id,
            "status": "running",
            "metadata": self.metadata,
        }
        if self.heartbeat_timeout_seconds is not None:
            kwargs["heartbeat_timeout_seconds"] = self.heartbeat_timeout_seconds
        return kwargs

    def _check_fresh(self) -> None:
        if self.run is not None:
            raise RuntimeError("a run_context can be entered only once")

    def _started(self, run: Run) -> Run:
        self.run = run
        return run

    def _run_id(self) -> str:
        assert self.run is not None
        return self.run["id"]

    def _end_update(self, exc: Optional[BaseException]) -> Dict[str, Any]:
        """The :meth:`update_run` arguments that end the run: ``completed``
        when the block ended normally, else ``failed`` or ``cancelled`` with
        the exception in the metadata."""
        if exc is None:
            return {"run_id": self._run_id(), "status": "completed"}
        return {
            "run_id": self._run_id(),
            "status": _final_status(exc),
            "metadata": _error_metadata(exc),
        }

    def _end_failed(
        self,
        update: Mapping[str, Any],
        err: Exception,
        exc: Optional[BaseException],
        interrupted: Optional[BaseException] = None,
    ) -> bool:
        """Log that ``update`` (from :meth:`_end_update`) failed with
        ``err``; ``False`` when ``err`` is to be raised instead. A run that
        ended normally may already be final (kept as it is); when the block
        raised or was interrupted, its exception matters more than ``err``."""
        run_id, status = update["run_id"], update["status"]
        if exc is None and interrupted is None:
            if not isinstance(err, ConflictError):
                return False
            logger.info("run %s was already final; left as it is: %s", run_id, err)
        else:
            logger.warning("could not mark run %s as %s: %s", run_id, status, err)
        return True


class SyncRunContext(_RunContextBase):
    """What :func:`run_context` returns for a :class:`SyncRegistryClient`:
    use it with ``with``."""

    _heartbeats: Optional[_HeartbeatThread] = None

    def __enter__(self) -> Run:
        self._check_fresh()
        run = self._started(self.client.create_run(**self._create_kwargs()))
        if self.heartbeat_interval is not None:
            self._heartbeats = _HeartbeatThread(self.client, run["id"], self.heartbeat_interval)
        return run

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        if self._heartbeats is not None:
            self._heartbeats.stop()
            self._heartbeats = None
        update = self._end_update(exc)
        try:
            self.client.update_run(**update)
        except Exception as err:
            if not self._end_failed(update, err, exc):
                raise
        # Returning None lets the original exception propagate.

    if not TYPE_CHECKING:
        # Only at run time, so that type checkers flag `async with` on it.
        async def __aenter__(self) -> Run:
            raise TypeError(
                "run_context() was given a SyncRegistryClient: use `with`, or pass "
                "a RegistryClient to use `async with`"
            )

        async def __aexit__(self, *exc_info: Any) -> None:  # pragma: no cover
            return None


class AsyncRunContext(_RunContextBase):
    """What :func:`run_context` returns for a :class:`RegistryClient`: use it
    with ``async with``."""

    _heartbeats: Optional[_HeartbeatTask] = None

    async def __aenter__(self) -> Run:
        self._check_fresh()
        run = self._started(await self.client.create_run(**self._create_kwargs()))
        if self.heartbeat_interval is not None:
            heartbeats = _HeartbeatTask(self.client, run["id"], self.heartbeat_interval)
            await heartbeats.start()
            self._heartbeats = heartbeats
        return run

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        interrupted: Optional[BaseException] = None
        if self._heartbeats is not None:
            heartbeats, self._heartbeats = self._heartbeats, None
            try:
                await heartbeats.stop()
            except BaseException as err:  # this task is being cancelled
                interrupted = err
        update = self._end_update(exc)
        try:
            # A cancelled task would have this await cancelled too (trio and
            # anyio cancel scopes stay cancelled); shield it so the run is not
            # left running. The client's own timeout bounds the wait.
            with anyio.CancelScope(shield=exc is not None or interrupted is not None):
                await self.client.update_run(**update)
        except Exception as err:
            if not self._end_failed(update, err, exc, interrupted):
                raise
        if exc is None and interrupted is not None:
            # The block ended, but the task was cancelled while the heartbeats
            # stopped: the completed work is recorded, the cancellation goes on.
            raise interrupted

    if not TYPE_CHECKING:
        # Only at run time, so that type checkers flag `with` on it.
        def __enter__(self) -> Run:
            raise TypeError(
                "run_context() was given an async RegistryClient: use `async with`, "
                "or pass a SyncRegistryClient to use `with`"
            )

        def __exit__(self, *exc_info: Any) -> None:  # pragma: no cover
            return None


@overload
def run_context(
    client: RegistryClient,
    contract_id: str,
    pipeline_name: Optional[str] = ...,
    pipeline_id: Optional[str] = ...,
    metadata: Optional[Mapping[str, Any]] = ...,
    *,
    heartbeat_timeout_seconds: Optional[int] = ...,
    heartbeat_interval: Optional[float] = ...,
) -> AsyncRunContext: ...


@overload
def run_context(
    client: SyncRegistryClient,
    contract_id: str,
    pipeline_name: Optional[str] = ...,
    pipeline_id: Optional[str] = ...,
    metadata: Optional[Mapping[str, Any]] = ...,
    *,
    heartbeat_timeout_seconds: Optional[int] = ...,
    heartbeat_interval: Optional[float] = ...,
) -> SyncRunContext: ...


def run_context(
    client: Union[SyncRegistryClient, RegistryClient],
    contract_id: str,
    pipeline_name: Optional[str] = None,
    pipeline_id: Optional[str] = None,
    metadata: Optional[Mapping[str, Any]] = None,
    *,
    heartbeat_timeout_seconds: Optional[int] = None,
    heartbeat_interval: Optional[float] = None,
) -> Union[SyncRunContext, AsyncRunContext]:
    """Track a block of code as a run: ``with`` for a
    :class:`SyncRegistryClient`, ``async with`` for a :class:`RegistryClient`.

    Yields the created run (a dict with ``status == "running"``). With
    ``heartbeat_timeout_seconds`` the run gets that heartbeat timeout and
    heartbeats are sent every ``heartbeat_interval`` seconds (default: a
    third of the timeout, at least 1 s) until the block ends. See the module
    documentation for how the run ends.
    """
    if _is_async_client(client):
        return AsyncRunContext(
            client, contract_id, pipeline_name, pipeline_id, metadata,
            heartbeat_timeout_seconds, heartbeat_interval,
        )
    return SyncRunContext(
        client, contract_id, pipeline_name, pipeline_id, metadata,
        heartbeat_timeout_seconds, heartbeat_interval,
    )


def async_run_context(
    client: RegistryClient,
    contract_id: str,
    pipeline_name: Optional[str] = None,
    pipeline_id: Optional[str] = None,
    metadata: Optional[Mapping[str, Any]] = None,
    *,
    heartbeat_timeout_seconds: Optional[int] = None,
    heartbeat_interval: Optional[float] = None,
) -> AsyncRunContext:
    """The async-only spelling of :func:`run_context`: ``async with
    async_run_context(client, ...) as run``."""
    if not _is_async_client(client):
        raise TypeError("async_run_context() needs a RegistryClient (the async client)")
    return AsyncRunContext(
        client, contract_id, pipeline_name, pipeline_id, metadata,
        heartbeat_timeout_seconds, heartbeat_interval,
    )


def _is_async_client(client: Any) -> bool:
    # isinstance covers the real clients; the coroutine check lets test fakes
    # that mimic either client work too.
    if isinstance(client, RegistryClient):
        return True
    if isinstance(client, SyncRegistryClient):
        return False
    return inspect.iscoroutinefunction(getattr(client, "create_run", None))
