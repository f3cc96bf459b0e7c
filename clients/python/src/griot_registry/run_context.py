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
"""

from __future__ import annotations

import inspect
import logging
from types import TracebackType
from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional, Type, Union, overload

import anyio

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


class _RunContextBase:
    def __init__(
        self,
        client: Any,
        contract_id: str,
        pipeline_name: Optional[str],
        pipeline_id: Optional[str],
        metadata: Optional[Mapping[str, Any]],
    ) -> None:
        self.client = client
        self.contract_id = contract_id
        self.pipeline_name = pipeline_name
        self.pipeline_id = pipeline_id
        self.metadata = metadata
        #: The run as created; ``None`` until the block is entered.
        self.run: Optional[Run] = None

    def _create_kwargs(self) -> Dict[str, Any]:
        return {
            "contract_id": self.contract_id,
            "pipeline_name": self.pipeline_name,
            "pipeline_id": self.pipeline_id,
            "status": "running",
            "metadata": self.metadata,
        }

    def _check_fresh(self) -> None:
        if self.run is not None:
            raise RuntimeError("a run_context can be entered only once")

    def _started(self, run: Run) -> Run:
        self.run = run
        return run

    def _run_id(self) -> str:
        assert self.run is not None
        return self.run["id"]


class SyncRunContext(_RunContextBase):
    """What :func:`run_context` returns for a :class:`SyncRegistryClient`:
    use it with ``with``."""

    def __enter__(self) -> Run:
        self._check_fresh()
        return self._started(self.client.create_run(**self._create_kwargs()))

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        run_id = self._run_id()
        if exc is None:
            try:
                self.client.update_run(run_id, status="completed")
            except ConflictError as err:
                logger.info("run %s was already final; left as it is: %s", run_id, err)
            return
        status = _final_status(exc)
        try:
            self.client.update_run(run_id, status=status, metadata=_error_metadata(exc))
        except Exception as err:
            logger.warning("could not mark run %s as %s: %s", run_id, status, err)
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

    async def __aenter__(self) -> Run:
        self._check_fresh()
        return self._started(await self.client.create_run(**self._create_kwargs()))

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        run_id = self._run_id()
        if exc is None:
            try:
                await self.client.update_run(run_id, status="completed")
            except ConflictError as err:
                logger.info("run %s was already final; left as it is: %s", run_id, err)
            return
        status = _final_status(exc)
        try:
            # A cancelled task would have this await cancelled too (trio and
            # anyio cancel scopes stay cancelled); shield it so the run is not
            # left running. The client's own timeout bounds the wait.
            with anyio.CancelScope(shield=True):
                await self.client.update_run(
                    run_id, status=status, metadata=_error_metadata(exc)
                )
        except Exception as err:
            logger.warning("could not mark run %s as %s: %s", run_id, status, err)

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
) -> AsyncRunContext: ...


@overload
def run_context(
    client: SyncRegistryClient,
    contract_id: str,
    pipeline_name: Optional[str] = ...,
    pipeline_id: Optional[str] = ...,
    metadata: Optional[Mapping[str, Any]] = ...,
) -> SyncRunContext: ...


def run_context(
    client: Union[SyncRegistryClient, RegistryClient],
    contract_id: str,
    pipeline_name: Optional[str] = None,
    pipeline_id: Optional[str] = None,
    metadata: Optional[Mapping[str, Any]] = None,
) -> Union[SyncRunContext, AsyncRunContext]:
    """Track a block of code as a run: ``with`` for a
    :class:`SyncRegistryClient`, ``async with`` for a :class:`RegistryClient`.

    Yields the created run (a dict with ``status == "running"``). See the
    module documentation for how the run ends.
    """
    if _is_async_client(client):
        return AsyncRunContext(client, contract_id, pipeline_name, pipeline_id, metadata)
    return SyncRunContext(client, contract_id, pipeline_name, pipeline_id, metadata)


def async_run_context(
    client: RegistryClient,
    contract_id: str,
    pipeline_name: Optional[str] = None,
    pipeline_id: Optional[str] = None,
    metadata: Optional[Mapping[str, Any]] = None,
) -> AsyncRunContext:
    """The async-only spelling of :func:`run_context`: ``async with
    async_run_context(client, ...) as run``."""
    if not _is_async_client(client):
        raise TypeError("async_run_context() needs a RegistryClient (the async client)")
    return AsyncRunContext(client, contract_id, pipeline_name, pipeline_id, metadata)


def _is_async_client(client: Any) -> bool:
    # isinstance covers the real clients; the coroutine check lets test fakes
    # that mimic either client work too.
    if isinstance(client, RegistryClient):
        return True
    if isinstance(client, SyncRegistryClient):
        return False
    return inspect.iscoroutinefunction(getattr(client, "create_run", None))
