"""run_context with both clients against the live server."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Dict, List, Sequence

import anyio
import pytest

from griot_registry import (
    RegistryClient,
    RegistryConnectionError,
    SyncRegistryClient,
    async_run_context,
    run_context,
)

from conftest import Registry


class Boom(Exception):
    pass


# -- sync ------------------------------------------------------------------


def test_normal_exit_completes_the_run(client: SyncRegistryClient, contract_id: str) -> None:
    with run_context(client, contract_id, pipeline_name="etl", pipeline_id="ext-1", metadata={"env": "test"}) as run:
        assert run["status"] == "running"
        assert run["contract_id"] == contract_id
        assert client.get_run(run["id"])["status"] == "running"
    final = client.get_run(run["id"])
    assert final["status"] == "completed" and final["completed_at"] is not None
    assert final["pipeline_name"] == "etl" and final["pipeline_id"] == "ext-1"
    assert final["metadata"] == {"env": "test"}
    assert final["created_by"] == "bootstrap"


def test_exception_fails_the_run_and_propagates(client: SyncRegistryClient, contract_id: str) -> None:
    error = Boom("disk full")
    with pytest.raises(Boom) as info:
        with run_context(client, contract_id, metadata={"env": "test"}) as run:
            client.record_validation(contract_id, "failed", run_id=run["id"])
            raise error
    assert info.value is error  # the very same exception
    final = client.get_run(run["id"])
    assert final["status"] == "failed" and final["completed_at"] is not None
    assert final["metadata"] == {"env": "test", "error_type": "Boom", "error_message": "disk full"}
    assert len(final["validations"]) == 1


def test_keyboard_interrupt_cancels_the_run(client: SyncRegistryClient, contract_id: str) -> None:
    with pytest.raises(KeyboardInterrupt):
        with run_context(client, contract_id) as run:
            raise KeyboardInterrupt
    final = client.get_run(run["id"])
    assert final["status"] == "cancelled"
    assert final["metadata"] == {"error_type": "KeyboardInterrupt", "error_message": ""}


def test_a_final_status_set_inside_the_block_is_kept(client: SyncRegistryClient, contract_id: str) -> None:
    with run_context(client, contract_id) as run:
        client.update_run(run["id"], status="cancelled", metadata={"why": "nothing to do"})
    final = client.get_run(run["id"])
    assert final["status"] == "cancelled" and final["metadata"] == {"why": "nothing to do"}


def test_wrong_statement_is_a_type_error(registry: Registry, contract_id: str) -> None:
    async_client = RegistryClient(registry.url, api_key=registry.api_key)
    with pytest.raises(TypeError, match="async with"):
        with run_context(async_client, contract_id):  # type: ignore[attr-defined]
            pass  # pragma: no cover
    with pytest.raises(TypeError, match="RegistryClient"):
        async_run_context(registry.client(), contract_id)  # type: ignore[arg-type]
    with registry.client() as client:
        assert client.list_runs(contract_id=contract_id)["total"] == 0  # nothing was created


def test_entering_twice_is_refused(client: SyncRegistryClient, contract_id: str) -> None:
    ctx = run_context(client, contract_id)
    with ctx:
        pass
    with pytest.raises(RuntimeError):
        with ctx:
            pass  # pragma: no cover
    assert client.list_runs(contract_id=contract_id)["total"] == 1


class FlakyClient:
    """Creates runs for real but cannot reach the registry to update them."""

    def __init__(self, inner: SyncRegistryClient) -> None:
        self.inner = inner
        self.updates: List[Dict[str, Any]] = []

    def create_run(self, **kwargs: Any) -> Any:
        return self.inner.create_run(**kwargs)

    def update_run(self, run_id: str, **kwargs: Any) -> Any:
        self.updates.append(kwargs)
        raise RegistryConnectionError("cannot reach the registry at http://registry:8000: down")


def test_registry_down_while_failing_keeps_the_original_exception(
    client: SyncRegistryClient, contract_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    flaky = FlakyClient(client)
    with caplog.at_level(logging.WARNING, logger="griot_registry"):
        with pytest.raises(Boom):
            with run_context(flaky, contract_id) as run:  # type: ignore[call-overload]
                raise Boom("original")
    assert flaky.updates == [{"status": "failed", "metadata": {"error_type": "Boom", "error_message": "original"}}]
    assert "could not mark run" in caplog.text and run["id"] in caplog.text


def test_registry_down_while_completing_is_raised(client: SyncRegistryClient, contract_id: str) -> None:
    with pytest.raises(RegistryConnectionError):
        with run_context(FlakyClient(client), contract_id):  # type: ignore[call-overload]
            pass


# -- async -----------------------------------------------------------------


@pytest.mark.anyio
async def test_async_normal_exit_completes_the_run(registry: Registry, contract_id: str) -> None:
    async with RegistryClient(registry.url, api_key=registry.api_key) as client:
        async with run_context(client, contract_id, pipeline_name="etl", metadata={"a": 1}) as run:
            assert run["status"] == "running"
            assert (await client.get_run(run["id"]))["status"] == "running"
        final = await client.get_run(run["id"])
        assert final["status"] == "completed" and final["metadata"] == {"a": 1}
        assert final["pipeline_name"] == "etl" and final["created_by"] == "bootstrap"

        async with async_run_context(client, contract_id, pipeline_id="p-2") as run2:
            pass
        assert (await client.get_run(run2["id"]))["status"] == "completed"


@pytest.mark.anyio
async def test_async_exception_fails_the_run(registry: Registry, contract_id: str) -> None:
    async with RegistryClient(registry.url, api_key=registry.api_key) as client:
        with pytest.raises(ValueError, match="bad rows"):
            async with run_context(client, contract_id) as run:
                raise ValueError("bad rows")
        final = await client.get_run(run["id"])
        assert final["status"] == "failed"
        assert final["metadata"] == {"error_type": "ValueError", "error_message": "bad rows"}


@pytest.mark.anyio
async def test_async_cancellation_cancels_the_run(registry: Registry, contract_id: str) -> None:
    async with RegistryClient(registry.url, api_key=registry.api_key) as client:
        with anyio.CancelScope() as scope:
            async with run_context(client, contract_id) as run:
                scope.cancel()
                await anyio.sleep(30)  # cancelled right away
        assert scope.cancelled_caught
        final = await client.get_run(run["id"])
        assert final["status"] == "cancelled"
        assert final["metadata"]["error_type"] == "CancelledError"


@pytest.mark.anyio
async def test_async_wrong_statement_is_a_type_error(registry: Registry, contract_id: str) -> None:
    with registry.client() as client:
        with pytest.raises(TypeError, match="use `with`"):
            async with run_context(client, contract_id):  # type: ignore[attr-defined]
                pass  # pragma: no cover
        assert client.list_runs(contract_id=contract_id)["total"] == 0


# -- heartbeats --------------------------------------------------------------


def _heartbeat_threads(run_id: str) -> List[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"griot-registry-heartbeat-{run_id}"]


def _expired(client: SyncRegistryClient, run_id: str) -> bool:
    return any(e["type"] == "heartbeat_expired" for e in client.iter_run_events(run_id))


def test_heartbeats_keep_the_run_alive(client: SyncRegistryClient, contract_id: str) -> None:
    # Without heartbeats the server (reaper every second) would fail this run
    # about 2 s in; see test_lifecycle.py::test_a_silent_run_is_failed_by_the_server.
    with run_context(client, contract_id, heartbeat_timeout_seconds=2) as run:
        assert run["heartbeat_timeout_seconds"] == 2
        assert _heartbeat_threads(run["id"]) and _heartbeat_threads(run["id"])[0].daemon
        time.sleep(3)
        during = client.get_run(run["id"])
        assert during["status"] == "running" and during["last_heartbeat_at"] is not None
    final = client.get_run(run["id"])
    assert final["status"] == "completed" and "failure_reason" not in final["metadata"]
    assert not _expired(client, run["id"])
    assert _heartbeat_threads(run["id"]) == []  # stopped


def test_heartbeats_with_an_exception_in_the_block(client: SyncRegistryClient, contract_id: str) -> None:
    with pytest.raises(Boom):
        with run_context(client, contract_id, heartbeat_timeout_seconds=30, heartbeat_interval=0.05) as run:
            time.sleep(0.2)
            raise Boom("late")
    assert client.get_run(run["id"])["status"] == "failed"
    assert _heartbeat_threads(run["id"]) == []


class RecordingClient:
    """The real client, recording every call in order; its heartbeats fail
    with ``heartbeat_errors`` first, and each takes ``heartbeat_delay``."""

    def __init__(self, inner: SyncRegistryClient, heartbeat_errors: Sequence[Exception] = (), heartbeat_delay: float = 0.0) -> None:
        self.inner = inner
        self.errors = list(heartbeat_errors)
        self.delay = heartbeat_delay
        self.calls: List[str] = []
        self.lock = threading.Lock()

    def _note(self, what: str) -> None:
        with self.lock:
            self.calls.append(what)

    def create_run(self, **kwargs: Any) -> Any:
        self._note("create")
        return self.inner.create_run(**kwargs)

    def update_run(self, run_id: str, **kwargs: Any) -> Any:
        self._note("update")
        return self.inner.update_run(run_id, **kwargs)

    def heartbeat(self, run_id: str) -> Any:
        self._note("heartbeat")
        time.sleep(self.delay)
        try:
            if self.errors:
                raise self.errors.pop(0)
            return self.inner.heartbeat(run_id)
        finally:
            self._note("heartbeat done")


def test_heartbeat_failures_are_logged_and_retried(
    client: SyncRegistryClient, contract_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    down = RegistryConnectionError("cannot reach the registry at http://registry:8000: down")
    recording = RecordingClient(client, heartbeat_errors=[down, down])
    with caplog.at_level(logging.INFO, logger="griot_registry"):
        with run_context(recording, contract_id, heartbeat_timeout_seconds=30, heartbeat_interval=0.05) as run:  # type: ignore[call-overload]
            time.sleep(0.5)
    assert recording.calls.count("heartbeat") >= 4  # went on after the failures
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and all(run["id"] in r.getMessage() and "down" in r.getMessage() for r in warnings)
    assert client.get_run(run["id"])["status"] == "completed"


def test_heartbeats_stop_before_the_run_is_marked(client: SyncRegistryClient, contract_id: str) -> None:
    # Each heartbeat takes 0.2 s: the block ends while one is under way, and
    # the run is marked only after it has finished. None is sent afterwards.
    recording = RecordingClient(client, heartbeat_delay=0.2)
    with run_context(recording, contract_id, heartbeat_timeout_seconds=30, heartbeat_interval=0.05) as run:  # type: ignore[call-overload]
        time.sleep(0.35)
    time.sleep(0.2)
    calls = recording.calls
    assert calls[0] == "create" and calls[-1] == "update" and calls.count("update") == 1
    assert calls.count("heartbeat") == calls.count("heartbeat done") >= 1
    assert client.get_run(run["id"])["status"] == "completed"


def test_heartbeats_stop_quietly_when_the_run_is_final(
    client: SyncRegistryClient, contract_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    recording = RecordingClient(client)
    with caplog.at_level(logging.INFO, logger="griot_registry"):
        with run_context(recording, contract_id, heartbeat_timeout_seconds=30, heartbeat_interval=0.05) as run:  # type: ignore[call-overload]
            client.update_run(run["id"], status="cancelled")
            time.sleep(0.3)
            assert _heartbeat_threads(run["id"]) == []  # ended on the 409
    assert recording.calls.count("heartbeat") == 1
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "no longer live" in caplog.text
    assert client.get_run(run["id"])["status"] == "cancelled"


def test_heartbeat_settings_are_checked(client: SyncRegistryClient, contract_id: str) -> None:
    for kwargs in (
        {"heartbeat_interval": 5},  # no timeout
        {"heartbeat_timeout_seconds": 0},
        {"heartbeat_timeout_seconds": 10, "heartbeat_interval": 10},
        {"heartbeat_timeout_seconds": 10, "heartbeat_interval": 0},
        {"heartbeat_timeout_seconds": 1.5},
    ):
        with pytest.raises(ValueError):
            run_context(client, contract_id, **kwargs)  # type: ignore[call-overload]
    assert run_context(client, contract_id, heartbeat_timeout_seconds=1).heartbeat_interval == 1.0
    assert run_context(client, contract_id, heartbeat_timeout_seconds=60).heartbeat_interval == 20.0
    assert run_context(client, contract_id).heartbeat_interval is None
    assert client.list_runs(contract_id=contract_id)["total"] == 0  # nothing was created


@pytest.mark.anyio
async def test_async_heartbeats_keep_the_run_alive(registry: Registry, contract_id: str) -> None:
    async with RegistryClient(registry.url, api_key=registry.api_key) as client:
        async with run_context(client, contract_id, heartbeat_timeout_seconds=2) as run:
            assert run["heartbeat_timeout_seconds"] == 2
            await anyio.sleep(3)
            during = await client.get_run(run["id"])
            assert during["status"] == "running" and during["last_heartbeat_at"] is not None
        final = await client.get_run(run["id"])
        assert final["status"] == "completed"
        events = [e["type"] async for e in client.iter_run_events(run["id"])]
        assert "heartbeat_expired" not in events


@pytest.mark.anyio
async def test_async_heartbeats_with_an_exception_and_a_cancellation(registry: Registry, contract_id: str) -> None:
    async with RegistryClient(registry.url, api_key=registry.api_key) as client:
        error = Boom("in the block")
        with pytest.raises(Boom) as info:  # the very exception, not an exception group
            async with run_context(client, contract_id, heartbeat_timeout_seconds=30, heartbeat_interval=0.05) as run:
                await anyio.sleep(0.2)
                raise error
        assert info.value is error
        assert (await client.get_run(run["id"]))["status"] == "failed"

        with anyio.CancelScope() as scope:
            async with run_context(client, contract_id, heartbeat_timeout_seconds=30, heartbeat_interval=0.05) as run2:
                await anyio.sleep(0.2)
                scope.cancel()
                await anyio.sleep(30)  # cancelled right away
        assert scope.cancelled_caught
        final = await client.get_run(run2["id"])
        assert final["status"] == "cancelled" and final["metadata"]["error_type"] == "CancelledError"

        with anyio.move_on_after(0.3) as timed:  # a deadline, not an explicit cancel
            async with run_context(client, contract_id, heartbeat_timeout_seconds=30, heartbeat_interval=0.05) as run3:
                await anyio.sleep(30)
        assert timed.cancelled_caught
        assert (await client.get_run(run3["id"]))["status"] == "cancelled"


class AsyncRecordingClient:
    """The async client; its heartbeats fail with ``heartbeat_errors`` first."""

    def __init__(self, inner: RegistryClient, heartbeat_errors: Sequence[Exception] = ()) -> None:
        self.inner = inner
        self.errors = list(heartbeat_errors)
        self.calls: List[str] = []

    async def create_run(self, **kwargs: Any) -> Any:
        self.calls.append("create")
        return await self.inner.create_run(**kwargs)

    async def update_run(self, run_id: str, **kwargs: Any) -> Any:
        self.calls.append("update")
        return await self.inner.update_run(run_id, **kwargs)

    async def heartbeat(self, run_id: str) -> Any:
        self.calls.append("heartbeat")
        if self.errors:
            raise self.errors.pop(0)
        return await self.inner.heartbeat(run_id)


@pytest.mark.anyio
async def test_async_heartbeat_failures_and_final_runs(
    registry: Registry, contract_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with RegistryClient(registry.url, api_key=registry.api_key) as client:
        down = RegistryConnectionError("cannot reach the registry at http://registry:8000: down")
        recording = AsyncRecordingClient(client, heartbeat_errors=[down])
        with caplog.at_level(logging.INFO, logger="griot_registry"):
            async with run_context(recording, contract_id, heartbeat_timeout_seconds=30, heartbeat_interval=0.05) as run:  # type: ignore[call-overload]
                await anyio.sleep(0.3)
                assert recording.calls.count("heartbeat") >= 3  # went on after the failure
                await client.update_run(run["id"], status="cancelled")
                # The next heartbeat (or one already in flight when the run
                # was cancelled) is answered 409, which ends them.
                with anyio.fail_after(5):
                    while "no longer live" not in caplog.text:
                        await anyio.sleep(0.01)
                beats = recording.calls.count("heartbeat")
                await anyio.sleep(0.3)
                assert recording.calls.count("heartbeat") == beats
        assert recording.calls[-1] == "update"
        assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
            f"heartbeat for run {run['id']} failed, next try in 0.05 s: {down}"
        ]
        assert "no longer live" in caplog.text
        assert (await client.get_run(run["id"]))["status"] == "cancelled"
