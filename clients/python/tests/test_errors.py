"""Each error class, raised by the live server (sync and async)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator

import pytest

from griot_registry import (
    AuthenticationError,
    ConflictError,
    NotFoundError,
    PreconditionFailedError,
    RegistryClient,
    RegistryConnectionError,
    RegistryError,
    RequestValidationError,
    RunWaitTimeout,
    SyncRegistryClient,
)

from conftest import Registry, run_registry

UNKNOWN_KEY = "grk_" + "0" * 64


def test_error_hierarchy() -> None:
    for cls in (
        NotFoundError, AuthenticationError, ConflictError, PreconditionFailedError,
        RequestValidationError, RegistryConnectionError, RunWaitTimeout,
    ):
        assert issubclass(cls, RegistryError)
    assert issubclass(RegistryError, Exception)
    assert issubclass(RunWaitTimeout, TimeoutError)


# -- 404 -------------------------------------------------------------------


def test_404_unknown_run(client: SyncRegistryClient) -> None:
    with pytest.raises(NotFoundError) as info:
        client.get_run("run_01HZZZZZZZZZZZZZZZZZZZZZZZ")
    err = info.value
    assert err.status_code == 404 and err.code == "NOT_FOUND"
    assert "run_01HZZZZZZZZZZZZZZZZZZZZZZZ" in err.message
    assert err.method == "GET" and err.url is not None and err.url.endswith("/api/v1/runs/run_01HZZZZZZZZZZZZZZZZZZZZZZZ")
    assert str(err).startswith("404 NOT_FOUND: Run 'run_01HZZZZZZZZZZZZZZZZZZZZZZZ' not found")


def test_404_unknown_validation_and_update_of_unknown_run(client: SyncRegistryClient) -> None:
    with pytest.raises(NotFoundError) as info:
        client.get_validation("val_nope")
    assert info.value.code == "NOT_FOUND"
    with pytest.raises(NotFoundError):
        client.update_run("run_nope", status="failed")


# -- 401 / 403 -------------------------------------------------------------


@pytest.mark.parametrize("bad_key", ["not-a-key", UNKNOWN_KEY], ids=["malformed", "unknown"])
def test_401_bad_key(registry: Registry, contract_id: str, bad_key: str) -> None:
    with SyncRegistryClient(registry.url, api_key=bad_key) as client:
        with pytest.raises(AuthenticationError) as info:
            client.create_run(contract_id)
        assert info.value.status_code == 401 and info.value.code == "UNAUTHORIZED"
        # A bad key is refused on reads too, even though reads are open.
        with pytest.raises(AuthenticationError):
            client.list_runs()
    assert bad_key not in str(info.value)


def test_401_no_key_on_a_write(registry: Registry, contract_id: str) -> None:
    with SyncRegistryClient(registry.url) as client:
        with pytest.raises(AuthenticationError) as info:
            client.record_validation(contract_id, "passed")
    assert info.value.status_code == 401 and "X-API-Key" in info.value.message


def test_401_revoked_key(registry: Registry, contract_id: str) -> None:
    secret = registry.create_key("to-revoke")
    with SyncRegistryClient(registry.url, api_key=secret) as client:
        assert client.create_run(contract_id)["created_by"] == "to-revoke"
        registry.revoke_key("to-revoke")
        with pytest.raises(AuthenticationError) as info:
            client.create_run(contract_id)
    assert info.value.status_code == 401 and "revoked" in info.value.message


def test_403_read_key_on_a_write(registry: Registry, read_key: str, contract_id: str, client: SyncRegistryClient) -> None:
    run = client.create_run(contract_id)
    with SyncRegistryClient(registry.url, api_key=read_key) as reader:
        with pytest.raises(AuthenticationError) as info:
            reader.create_run(contract_id)
        assert info.value.status_code == 403 and info.value.code == "FORBIDDEN"
        with pytest.raises(AuthenticationError) as info:
            reader.update_run(run["id"], status="running")
        assert info.value.status_code == 403
        # Reading is what a read key is for.
        assert reader.get_run(run["id"])["id"] == run["id"]
        assert reader.list_runs(contract_id=contract_id)["total"] == 1


# -- 409 -------------------------------------------------------------------


def test_409_completed_to_running(client: SyncRegistryClient, contract_id: str) -> None:
    run = client.create_run(contract_id, status="running")
    client.update_run(run["id"], status="completed")
    with pytest.raises(ConflictError) as info:
        client.update_run(run["id"], status="running")
    assert info.value.status_code == 409 and info.value.code == "INVALID_TRANSITION"
    assert client.get_run(run["id"])["status"] == "completed"


# -- 400 / 422 -------------------------------------------------------------


def test_422_empty_contract_id(client: SyncRegistryClient) -> None:
    with pytest.raises(RequestValidationError) as info:
        client.create_run(contract_id="")
    assert info.value.status_code == 422 and info.value.code == "VALIDATION_ERROR"
    assert "contract_id" in info.value.message


@pytest.mark.parametrize(
    "call",
    [
        lambda c, cid: c.record_validation(cid, "passed", run_id="run_does_not_exist"),
        lambda c, cid: c.record_validation(cid, "excellent"),
        lambda c, cid: c.create_run(cid, status="paused"),
        lambda c, cid: c.list_runs(limit=0),
        lambda c, cid: c.list_validations(limit=1001),
        lambda c, cid: c.list_runs(start_date="not a date"),
        lambda c, cid: c.get_validation_stats(cid, days=0),
        lambda c, cid: c.get_validation_stats(cid, granularity="month"),
    ],
    ids=["unknown-run", "bad-validation-status", "bad-run-status", "limit-0", "limit-1001", "bad-date", "days-0", "bad-granularity"],
)
def test_422_invalid_requests(client: SyncRegistryClient, contract_id: str, call) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RequestValidationError) as info:
        call(client, contract_id)
    assert info.value.status_code == 422 and info.value.code == "VALIDATION_ERROR"


def test_422_validation_on_a_run_of_another_contract(client: SyncRegistryClient, contract_id: str) -> None:
    run = client.create_run(contract_id)
    with pytest.raises(RequestValidationError) as info:
        client.record_validation(contract_id + "-other", "passed", run_id=run["id"])
    assert "belongs to contract" in info.value.message


def test_422_empty_update(client: SyncRegistryClient, contract_id: str) -> None:
    run = client.create_run(contract_id)
    with pytest.raises(RequestValidationError) as info:
        client.update_run(run["id"])
    assert "empty" in info.value.message


# -- connection errors -----------------------------------------------------


def test_connection_error_on_a_read_after_retries(closed_port_url: str) -> None:
    with SyncRegistryClient(closed_port_url, max_retries=2, retry_backoff=0.01) as client:
        started = time.monotonic()
        with pytest.raises(RegistryConnectionError) as info:
            client.get_run("run_x")
    err = info.value
    assert err.status_code is None and err.code is None
    assert isinstance(err, RegistryError)
    assert err.url == f"{closed_port_url}/api/v1/runs/run_x"
    assert closed_port_url in str(err) and "after 3 attempts" in str(err)
    assert time.monotonic() - started < 5


def test_connection_error_on_a_write_is_not_retried(closed_port_url: str) -> None:
    with SyncRegistryClient(closed_port_url, api_key=UNKNOWN_KEY, retry_backoff=5) as client:
        started = time.monotonic()
        with pytest.raises(RegistryConnectionError) as info:
            client.record_validation("c", "passed")
        assert time.monotonic() - started < 2  # no 5 s backoff: it was not retried
    assert f"{closed_port_url}/api/v1/validations" in str(info.value)
    assert "gave up after" not in str(info.value)
    assert info.value.method == "POST"


def test_connection_error_on_a_create_after_retries(closed_port_url: str) -> None:
    # A create carries an Idempotency-Key, so it is retried like a read.
    with SyncRegistryClient(closed_port_url, api_key=UNKNOWN_KEY, max_retries=2, retry_backoff=0.01) as client:
        with pytest.raises(RegistryConnectionError) as info:
            client.create_run("c")
    assert f"{closed_port_url}/api/v1/runs" in str(info.value)
    assert "gave up after 3 attempts" in str(info.value)
    assert info.value.method == "POST"


# -- async -----------------------------------------------------------------


@pytest.mark.anyio
async def test_async_error_classes(registry: Registry, read_key: str, contract_id: str, closed_port_url: str) -> None:
    async with RegistryClient(registry.url, api_key=registry.api_key) as client:
        with pytest.raises(NotFoundError) as nf:
            await client.get_run("run_unknown")
        assert nf.value.status_code == 404

        with pytest.raises(RequestValidationError) as invalid:
            await client.create_run(contract_id="")
        assert invalid.value.status_code == 422

        run = await client.create_run(contract_id, status="running")
        await client.update_run(run["id"], status="completed")
        with pytest.raises(ConflictError) as conflict:
            await client.update_run(run["id"], status="running")
        assert conflict.value.code == "INVALID_TRANSITION"

    async with RegistryClient(registry.url, api_key="grk_bad") as client:
        with pytest.raises(AuthenticationError) as unauthorized:
            await client.create_run(contract_id)
        assert unauthorized.value.status_code == 401

    async with RegistryClient(registry.url, api_key=read_key) as client:
        with pytest.raises(AuthenticationError) as forbidden:
            await client.record_validation(contract_id, "passed")
        assert forbidden.value.status_code == 403 and forbidden.value.code == "FORBIDDEN"

    async with RegistryClient(closed_port_url, max_retries=1, retry_backoff=0.01) as client:
        with pytest.raises(RegistryConnectionError) as down:
            await client.health()
        assert closed_port_url in str(down.value) and down.value.status_code is None
        with pytest.raises(RegistryConnectionError) as down_write:
            await client.update_run("run_x", status="failed")
        assert "gave up after" not in str(down_write.value)


# -- a server that wants keys for reads ------------------------------------


@pytest.fixture(scope="module")
def locked_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    workdir: Path = tmp_path_factory.mktemp("locked-registry")
    with run_registry(workdir, ["--require-auth-for-reads"]) as server:
        yield server


def test_require_auth_for_reads(locked_registry: Registry, contract_id: str) -> None:
    with SyncRegistryClient(locked_registry.url) as anonymous:
        assert anonymous.health()["status"] == "ok"  # health never needs a key
        with pytest.raises(AuthenticationError) as info:
            anonymous.list_runs()
        assert info.value.status_code == 401
    with locked_registry.client() as client:
        run = client.create_run(contract_id)
        assert client.get_run(run["id"])["id"] == run["id"]
        assert client.list_runs(contract_id=contract_id)["total"] == 1
