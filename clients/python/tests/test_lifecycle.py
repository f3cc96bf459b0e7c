"""The run lifecycle against the live server, sync and async: idempotent
creates (and their automatic retry), versions and If-Match, heartbeats and
the reaper, the stale filter, a run's events and waiting for a run."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any, AsyncIterator, Iterator, List, Optional

import anyio
import httpx
import pytest

from griot_registry import (
    ConflictError,
    NotFoundError,
    PreconditionFailedError,
    RegistryClient,
    RegistryError,
    RequestValidationError,
    RunWaitTimeout,
    SyncRegistryClient,
)

from conftest import Registry, run_registry

RUNS_PATH = "/api/v1/runs"


@pytest.fixture
async def aclient(registry: Registry) -> AsyncIterator[RegistryClient]:
    async with RegistryClient(registry.url, api_key=registry.api_key) as client:
        yield client


# -- a network that loses answers -----------------------------------------


def _is_create(request: httpx.Request) -> bool:
    return request.method == "POST" and request.url.path == RUNS_PATH


class Failure:
    """What happens to the first create: ``before`` means the request never
    reaches the server; otherwise it does, the run is created, and the
    answer is lost on the way back (the connection drops, or a proxy answers
    502 instead)."""

    def __init__(self, name: str, reaches_server: bool) -> None:
        self.name = name
        self.reaches_server = reaches_server

    def replace(self, request: httpx.Request) -> httpx.Response:
        if self.name == "connect":
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        if self.name == "read":
            raise httpx.ReadError("[Errno 104] Connection reset by peer", request=request)
        if self.name == "protocol":
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)
        return httpx.Response(int(self.name), text="<html>Bad Gateway</html>", request=request)

    def __repr__(self) -> str:
        return self.name


FAILURES = [
    Failure("connect", reaches_server=False),
    Failure("read", reaches_server=True),
    Failure("protocol", reaches_server=True),
    Failure("502", reaches_server=True),
    Failure("503", reaches_server=True),
    Failure("504", reaches_server=True),
]


class LossyTransport(httpx.BaseTransport):
    """A real transport to the server, except that the first ``failures``
    creates go wrong as ``failure`` says."""

    def __init__(self, failure: Failure, failures: int = 1) -> None:
        self.inner = httpx.HTTPTransport()
        self.failure = failure
        self.failures_left = failures
        self.creates: List[httpx.Request] = []
        self.answers: List[Optional[httpx.Response]] = []
        #: The statuses of the answers that were lost.
        self.lost: List[int] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if not _is_create(request):
            return self.inner.handle_request(request)
        self.creates.append(request)
        if self.failures_left == 0:
            response = self.inner.handle_request(request)
            response.read()
            self.answers.append(response)
            return response
        self.failures_left -= 1
        self.answers.append(None)
        if self.failure.reaches_server:
            lost = self.inner.handle_request(request)
            lost.read()
            lost.close()
            self.lost.append(lost.status_code)
        return self.failure.replace(request)

    def close(self) -> None:
        self.inner.close()


class AsyncLossyTransport(httpx.AsyncBaseTransport):
    """:class:`LossyTransport` for the async client."""

    def __init__(self, failure: Failure, failures: int = 1) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.failure = failure
        self.failures_left = failures
        self.creates: List[httpx.Request] = []
        self.answers: List[Optional[httpx.Response]] = []
        #: The statuses of the answers that were lost.
        self.lost: List[int] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not _is_create(request):
            return await self.inner.handle_async_request(request)
        self.creates.append(request)
        if self.failures_left == 0:
            response = await self.inner.handle_async_request(request)
            await response.aread()
            self.answers.append(response)
            return response
        self.failures_left -= 1
        self.answers.append(None)
        if self.failure.reaches_server:
            lost = await self.inner.handle_async_request(request)
            await lost.aread()
            await lost.aclose()
            self.lost.append(lost.status_code)
        return self.failure.replace(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def _check_one_run_made(
    transport: Any, failure: Failure, run: Any, listed: Any, attempts: int = 2
) -> None:
    assert len(transport.creates) == attempts
    keys = {request.headers["Idempotency-Key"] for request in transport.creates}
    assert len(keys) == 1  # every attempt carried the same key
    uuid.UUID(keys.pop(), version=4)
    answer = transport.answers[-1]
    assert answer is not None
    if failure.reaches_server:  # the retry found the run the lost attempt made
        assert transport.lost == [201]
        assert answer.status_code == 200 and answer.headers["Idempotent-Replayed"] == "true"
    else:
        assert answer.status_code == 201 and "Idempotent-Replayed" not in answer.headers
    assert listed["total"] == 1
    assert listed["items"][0]["id"] == run["id"]


# -- idempotent creates ----------------------------------------------------


def test_same_idempotency_key_replays_the_run(client: SyncRegistryClient, contract_id: str) -> None:
    key = f"create-{uuid.uuid4()}"
    first = client.create_run(contract_id, pipeline_name="etl", status="running", metadata={"n": 1}, idempotency_key=key)
    again = client.create_run(contract_id, pipeline_name="etl", status="running", metadata={"n": 1}, idempotency_key=key)
    assert again["id"] == first["id"] and again == first
    assert client.list_runs(contract_id=contract_id)["total"] == 1

    # The replay shows the run as it is now.
    client.update_run(first["id"], status="completed")
    replayed = client.create_run(contract_id, pipeline_name="etl", status="running", metadata={"n": 1}, idempotency_key=key)
    assert replayed["id"] == first["id"] and replayed["status"] == "completed"

    with pytest.raises(RequestValidationError) as info:
        client.create_run(contract_id, pipeline_name="other", idempotency_key=key)
    assert info.value.status_code == 422 and key in info.value.message
    assert client.list_runs(contract_id=contract_id)["total"] == 1


def test_each_create_run_call_gets_its_own_key(client: SyncRegistryClient, contract_id: str) -> None:
    a = client.create_run(contract_id, status="running")
    b = client.create_run(contract_id, status="running")  # same body: still a new run
    assert a["id"] != b["id"]
    assert client.list_runs(contract_id=contract_id)["total"] == 2


def test_idempotency_keys_belong_to_an_api_key(registry: Registry, client: SyncRegistryClient, contract_id: str) -> None:
    key = str(uuid.uuid4())
    mine = client.create_run(contract_id, idempotency_key=key)
    with registry.client(api_key=registry.create_key(f"other-{uuid.uuid4().hex[:8]}")) as other:
        theirs = other.create_run(contract_id, idempotency_key=key)
    assert theirs["id"] != mine["id"]


def test_a_bad_idempotency_key_is_refused_before_sending(client: SyncRegistryClient, contract_id: str) -> None:
    for bad in ["", "x" * 256, "caf\u00e9", "tab\there", " padded "]:
        with pytest.raises(ValueError):
            client.create_run(contract_id, idempotency_key=bad)
    assert client.create_run(contract_id, idempotency_key="k" * 255)["contract_id"] == contract_id
    assert client.list_runs(contract_id=contract_id)["total"] == 1


@pytest.mark.parametrize("failure", FAILURES, ids=repr)
def test_create_is_retried_without_making_a_second_run(registry: Registry, contract_id: str, failure: Failure) -> None:
    transport = LossyTransport(failure)
    with registry.client(transport=transport, retry_backoff=0) as client:
        run = client.create_run(contract_id, pipeline_name="etl", status="running")
        listed = client.list_runs(contract_id=contract_id)
    assert run["contract_id"] == contract_id and run["status"] == "running"
    _check_one_run_made(transport, failure, run, listed)


def test_create_gives_up_after_max_retries_and_made_one_run(registry: Registry, client: SyncRegistryClient, contract_id: str) -> None:
    transport = LossyTransport(Failure("read", reaches_server=True), failures=10)
    with registry.client(transport=transport, retry_backoff=0, max_retries=2) as lossy:
        with pytest.raises(RegistryError) as info:
            lossy.create_run(contract_id)
    assert "gave up after 3 attempts" in str(info.value)
    assert transport.lost == [201, 200, 200]  # created once, then replayed
    assert len({r.headers["Idempotency-Key"] for r in transport.creates}) == 1
    assert client.list_runs(contract_id=contract_id)["total"] == 1


@pytest.mark.anyio
@pytest.mark.parametrize("failure", [f for f in FAILURES if f.name in ("connect", "read", "503")], ids=repr)
async def test_async_create_is_retried_without_making_a_second_run(
    registry: Registry, contract_id: str, failure: Failure
) -> None:
    transport = AsyncLossyTransport(failure)
    async with RegistryClient(registry.url, api_key=registry.api_key, transport=transport, retry_backoff=0) as client:
        run = await client.create_run(contract_id, status="running")
        listed = await client.list_runs(contract_id=contract_id)
    _check_one_run_made(transport, failure, run, listed)


@pytest.mark.anyio
async def test_async_idempotent_replay(aclient: RegistryClient, contract_id: str) -> None:
    key = str(uuid.uuid4())
    first = await aclient.create_run(contract_id, heartbeat_timeout_seconds=600, idempotency_key=key)
    again = await aclient.create_run(contract_id, heartbeat_timeout_seconds=600, idempotency_key=key)
    assert again["id"] == first["id"]
    assert (await aclient.list_runs(contract_id=contract_id))["total"] == 1
    with pytest.raises(RequestValidationError):
        await aclient.create_run(contract_id, heartbeat_timeout_seconds=601, idempotency_key=key)


# -- versions and If-Match -------------------------------------------------


def test_versions_and_if_match(client: SyncRegistryClient, contract_id: str) -> None:
    run = client.create_run(contract_id, status="running")
    assert run["version"] == 1
    updated = client.update_run(run["id"], metadata={"step": 1}, if_match=run["version"])
    assert updated["version"] == 2 and updated["metadata"] == {"step": 1}

    with pytest.raises(PreconditionFailedError) as info:
        client.update_run(run["id"], metadata={"step": "stale"}, if_match=run["version"])
    err = info.value
    assert err.status_code == 412 and err.code == "PRECONDITION_FAILED"
    assert err.method == "PATCH" and isinstance(err, RegistryError)
    assert client.get_run(run["id"]) == updated  # nothing changed

    done = client.update_run(run["id"], status="completed", if_match=updated["version"])
    assert done["status"] == "completed" and done["version"] == 3


@pytest.mark.anyio
async def test_async_if_match(aclient: RegistryClient, contract_id: str) -> None:
    run = await aclient.create_run(contract_id)
    await aclient.update_run(run["id"], status="running", if_match=1)
    with pytest.raises(PreconditionFailedError):
        await aclient.update_run(run["id"], status="failed", if_match=1)
    assert (await aclient.get_run(run["id"]))["status"] == "running"


# -- heartbeats ------------------------------------------------------------


def test_heartbeat(client: SyncRegistryClient, contract_id: str) -> None:
    run = client.create_run(contract_id, status="running", heartbeat_timeout_seconds=600)
    assert run["heartbeat_timeout_seconds"] == 600
    assert run["heartbeat_deadline"] is not None
    beat = client.heartbeat(run["id"])
    assert beat["id"] == run["id"] and beat["status"] == "running"
    assert beat["last_heartbeat_at"] is not None
    assert beat["heartbeat_deadline"] is not None and beat["heartbeat_deadline"] > run["heartbeat_deadline"]
    assert beat["version"] == run["version"]  # a heartbeat is not a change

    client.update_run(run["id"], status="completed")
    with pytest.raises(ConflictError) as info:
        client.heartbeat(run["id"])
    assert info.value.status_code == 409 and info.value.code == "INVALID_TRANSITION"


def test_heartbeat_timeout_can_be_changed_and_removed(client: SyncRegistryClient, contract_id: str) -> None:
    run = client.create_run(contract_id, status="running")
    assert run["heartbeat_timeout_seconds"] is None and run["heartbeat_deadline"] is None
    with_timeout = client.update_run(run["id"], heartbeat_timeout_seconds=300)
    assert with_timeout["heartbeat_timeout_seconds"] == 300 and with_timeout["heartbeat_deadline"] is not None
    removed = client.update_run(run["id"], heartbeat_timeout_seconds=0)
    assert removed["heartbeat_timeout_seconds"] is None and removed["heartbeat_deadline"] is None
    with pytest.raises(RequestValidationError):
        client.create_run(contract_id, heartbeat_timeout_seconds=0)


def test_a_silent_run_is_failed_by_the_server(client: SyncRegistryClient, contract_id: str) -> None:
    # The control for the run_context heartbeat tests: nothing is sent, and
    # the reaper (every second in these tests) fails the run.
    run = client.create_run(contract_id, status="running", heartbeat_timeout_seconds=1)
    deadline = time.monotonic() + 10
    current = run
    while current["status"] == "running" and time.monotonic() < deadline:
        time.sleep(0.1)
        current = client.get_run(run["id"])
    assert current["status"] == "failed"
    assert current["metadata"] == {"failure_reason": "heartbeat_timeout"}
    assert current["completed_at"] is not None and current["heartbeat_deadline"] is None
    last = client.list_run_events(run["id"])["items"][-1]
    assert last["type"] == "heartbeat_expired" and last["actor"] == "system"
    assert (last["from_status"], last["to_status"]) == ("running", "failed")


@pytest.mark.anyio
async def test_async_heartbeat_and_the_reaper(aclient: RegistryClient, contract_id: str) -> None:
    run = await aclient.create_run(contract_id, heartbeat_timeout_seconds=1)
    beat = await aclient.heartbeat(run["id"])
    assert beat["status"] == "pending" and beat["last_heartbeat_at"] is not None
    # Waiting wakes when the server fails the silent run.
    final = await aclient.wait_for_run(run["id"], timeout=10)
    assert final["status"] == "failed" and final["metadata"]["failure_reason"] == "heartbeat_timeout"
    with pytest.raises(ConflictError):
        await aclient.heartbeat(run["id"])


# -- stale runs ------------------------------------------------------------


@pytest.fixture(scope="module")
def unreaped_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A server whose reaper does not come round during the tests, so an
    overdue run stays stale instead of being failed."""
    workdir: Path = tmp_path_factory.mktemp("unreaped-registry")
    with run_registry(workdir, ["--reaper-interval-seconds", "3600"]) as server:
        yield server


def test_stale_filter(unreaped_registry: Registry, contract_id: str) -> None:
    with unreaped_registry.client() as client:
        overdue = client.create_run(contract_id, status="running", heartbeat_timeout_seconds=1)
        pending = client.create_run(contract_id, heartbeat_timeout_seconds=1)
        alive = client.create_run(contract_id, status="running", heartbeat_timeout_seconds=600)
        no_timeout = client.create_run(contract_id, status="running")
        assert client.list_runs(contract_id=contract_id, stale=True)["total"] == 0
        time.sleep(1.2)
        stale = client.list_runs(contract_id=contract_id, stale=True)
        assert {r["id"] for r in stale["items"]} == {overdue["id"], pending["id"]}
        assert [r["id"] for r in client.iter_runs(contract_id=contract_id, stale=True, page_size=1)] == [
            pending["id"], overdue["id"]
        ]
        everything = client.list_runs(contract_id=contract_id, stale=False)
        assert everything["total"] == 4
        assert {alive["id"], no_timeout["id"]} <= {r["id"] for r in everything["items"]}

        client.heartbeat(overdue["id"])  # alive again
        client.update_run(pending["id"], status="cancelled")  # final: never stale
        assert client.list_runs(contract_id=contract_id, stale=True)["total"] == 0


def test_stale_filter_on_the_reaping_server(client: SyncRegistryClient, contract_id: str) -> None:
    # With the reaper running every second, an overdue run is either listed
    # as stale or already failed; it never stays running and unlisted.
    run = client.create_run(contract_id, status="running", heartbeat_timeout_seconds=1)
    client.create_run(contract_id, status="running", heartbeat_timeout_seconds=600)
    time.sleep(1.05)
    stale_ids = {r["id"] for r in client.list_runs(contract_id=contract_id, stale=True)["items"]}
    current = client.get_run(run["id"])
    if run["id"] not in stale_ids:
        assert current["status"] == "failed" and current["metadata"]["failure_reason"] == "heartbeat_timeout"
    assert stale_ids <= {run["id"]}


@pytest.mark.anyio
async def test_async_stale_filter(unreaped_registry: Registry, contract_id: str) -> None:
    async with RegistryClient(unreaped_registry.url, api_key=unreaped_registry.api_key) as client:
        run = await client.create_run(contract_id, heartbeat_timeout_seconds=1)
        await client.create_run(contract_id)
        await anyio.sleep(1.2)
        assert [r["id"] for r in (await client.list_runs(contract_id=contract_id, stale=True))["items"]] == [run["id"]]
        assert [r["id"] async for r in client.iter_runs(contract_id=contract_id, stale=True)] == [run["id"]]


# -- events ----------------------------------------------------------------


def test_run_events(client: SyncRegistryClient, contract_id: str) -> None:
    run = client.create_run(contract_id, metadata={"a": 1})
    client.update_run(run["id"], status="running")
    client.update_run(run["id"], metadata={"rows": 10}, pipeline_name="etl")
    client.heartbeat(run["id"])  # not an event
    client.update_run(run["id"], status="completed", metadata={"rows": 20})

    page = client.list_run_events(run["id"])
    assert page["total"] == 4 and page["limit"] == 50 and page["offset"] == 0
    events = page["items"]
    assert [e["type"] for e in events] == ["created", "status_changed", "updated", "status_changed"]
    assert {e["actor"] for e in events} == {"bootstrap"}
    assert {e["run_id"] for e in events} == {run["id"]}
    assert [(e["from_status"], e["to_status"]) for e in events] == [
        (None, "pending"), ("pending", "running"), ("running", "running"), ("running", "completed")
    ]
    assert events[2]["changes"] == {"metadata": {"rows": 10}, "pipeline_name": "etl"}
    assert events[3]["changes"] == {"status": "completed", "metadata": {"rows": 20}}
    ids = [e["id"] for e in events]
    assert ids == sorted(ids)  # oldest first
    assert all(e["occurred_at"].endswith("Z") for e in events)

    second = client.list_run_events(run["id"], limit=2, offset=1)
    assert second["total"] == 4 and [e["id"] for e in second["items"]] == ids[1:3]
    assert [e["id"] for e in client.iter_run_events(run["id"], page_size=3)] == ids


def test_events_of_an_unknown_run(client: SyncRegistryClient) -> None:
    with pytest.raises(NotFoundError):
        client.list_run_events("run_unknown")


@pytest.mark.anyio
async def test_async_run_events(aclient: RegistryClient, contract_id: str) -> None:
    run = await aclient.create_run(contract_id, status="running")
    await aclient.update_run(run["id"], status="failed")
    events = (await aclient.list_run_events(run["id"]))["items"]
    assert [e["type"] for e in events] == ["created", "status_changed"]
    assert [e["actor"] for e in events] == ["bootstrap", "bootstrap"]
    walked = [e async for e in aclient.iter_run_events(run["id"], page_size=1)]
    assert walked == events


# -- waiting ---------------------------------------------------------------


def test_wait_for_a_final_run_returns_at_once(client: SyncRegistryClient, contract_id: str) -> None:
    run = client.create_run(contract_id, status="completed")
    started = time.monotonic()
    assert client.wait_for_run(run["id"]) == client.get_run(run["id"])
    assert client.wait_for_run(run["id"], timeout=0)["status"] == "completed"
    assert time.monotonic() - started < 1


def test_wait_wakes_when_another_thread_finishes_the_run(
    registry: Registry, client: SyncRegistryClient, contract_id: str
) -> None:
    run = client.create_run(contract_id, status="running")

    def finish() -> None:
        time.sleep(0.3)
        with registry.client() as other:
            other.update_run(run["id"], status="failed", metadata={"why": "test"})

    worker = threading.Thread(target=finish)
    started = time.monotonic()
    worker.start()
    try:
        final = client.wait_for_run(run["id"], timeout=20)
    finally:
        worker.join()
    elapsed = time.monotonic() - started
    assert final["status"] == "failed" and final["metadata"] == {"why": "test"}
    assert 0.25 < elapsed < 3


def test_wait_timeout(client: SyncRegistryClient, contract_id: str) -> None:
    run = client.create_run(contract_id, status="running")
    started = time.monotonic()
    with pytest.raises(RunWaitTimeout) as info:
        client.wait_for_run(run["id"], timeout=1.3)
    elapsed = time.monotonic() - started
    assert 1.3 <= elapsed < 2.5
    err = info.value
    assert isinstance(err, TimeoutError) and isinstance(err, RegistryError)
    assert err.run_id == run["id"] and err.timeout == 1.3
    assert err.run["id"] == run["id"] and err.run["status"] == "running"
    assert str(err) == f"run {run['id']} is still running after waiting 1.3 s"

    with pytest.raises(TimeoutError):  # timeout=0: one look, no wait
        client.wait_for_run(run["id"], timeout=0)


def test_wait_for_an_unknown_run(client: SyncRegistryClient) -> None:
    with pytest.raises(NotFoundError):
        client.wait_for_run("run_unknown", timeout=5)


@pytest.mark.anyio
async def test_async_wait(aclient: RegistryClient, contract_id: str) -> None:
    done = await aclient.create_run(contract_id, status="cancelled")
    assert (await aclient.wait_for_run(done["id"]))["status"] == "cancelled"

    run = await aclient.create_run(contract_id, status="running")
    with pytest.raises(RunWaitTimeout) as info:
        await aclient.wait_for_run(run["id"], timeout=0.5)
    assert info.value.run["status"] == "running"

    results: List[Any] = []

    async def waiter() -> None:
        results.append(await aclient.wait_for_run(run["id"], timeout=20, poll_timeout=10))

    started = time.monotonic()
    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        await anyio.sleep(0.3)
        await aclient.update_run(run["id"], status="completed")
    assert results[0]["status"] == "completed" and results[0]["id"] == run["id"]
    assert time.monotonic() - started < 3
