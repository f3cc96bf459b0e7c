"""run_context with both clients against the live server."""

from __future__ import annotations

import logging
from typing import Any, Dict, List

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
