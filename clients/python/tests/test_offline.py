"""Client behaviour that a healthy server cannot show: what goes on the wire,
retries on 502/503/504 and dropped connections, odd error bodies. These use
httpx.MockTransport instead of the live server."""

from __future__ import annotations

import json
import pickle
import ssl
import time
import uuid
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable, Dict, List, Optional

import httpx
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
from griot_registry import _core
from griot_registry._core import Pager, format_datetime, normalize_base_url

Handler = Callable[[httpx.Request], httpx.Response]

RUN: Any = {"id": "run_1", "status": "pending"}


class Recorder:
    """A MockTransport handler that answers from a script and keeps requests."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.requests: List[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, httpx.Response):
            return answer
        return httpx.Response(200, json=answer)

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]

    def body(self, index: int = -1) -> Any:
        return json.loads(self.requests[index].content)


def sync_client(handler: Handler, **kwargs: Any) -> SyncRegistryClient:
    kwargs.setdefault("retry_backoff", 0)
    return SyncRegistryClient("http://registry.test:8000", transport=httpx.MockTransport(handler), **kwargs)


def async_client(handler: Handler, **kwargs: Any) -> RegistryClient:
    kwargs.setdefault("retry_backoff", 0)
    return RegistryClient("http://registry.test:8000", transport=httpx.MockTransport(handler), **kwargs)


def error(status: int, code: str, message: str = "nope") -> httpx.Response:
    return httpx.Response(status, json={"detail": {"code": code, "message": message}})


# -- URLs ------------------------------------------------------------------


@pytest.mark.parametrize(
    "given, expected",
    [
        ("http://h:8000", "http://h:8000"),
        ("http://h:8000/", "http://h:8000"),
        ("http://h:8000/api/v1", "http://h:8000"),
        ("http://h:8000/api/v1/", "http://h:8000"),
        ("  https://h/registry/api/v1/ ", "https://h/registry"),
        ("https://h/registry/", "https://h/registry"),
    ],
)
def test_normalize_base_url(given: str, expected: str) -> None:
    assert normalize_base_url(given) == expected


@pytest.mark.parametrize("bad", ["", "   ", "registry:8000", "ftp://h", "http://", "http://h/?x=1"])
def test_bad_base_url_is_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        SyncRegistryClient(bad)


def test_requests_go_to_the_api_paths() -> None:
    rec = Recorder({"status": "ok", "version": "1"}, RUN)
    with SyncRegistryClient("http://h:8000/api/v1/", transport=httpx.MockTransport(rec)) as client:
        client.health()
        client.get_run("run_1")
        client.get_validation("val/1")
        client.get_validation_stats("a b/c")
    urls = [str(r.url) for r in rec.requests]
    assert urls == [
        "http://h:8000/health",
        "http://h:8000/api/v1/runs/run_1",
        "http://h:8000/api/v1/validations/val%2F1",
        "http://h:8000/api/v1/validations/stats/a%20b%2Fc?days=30&granularity=day",
    ]


def test_empty_ids_are_refused_before_sending() -> None:
    rec = Recorder(RUN)
    with sync_client(rec) as client:
        with pytest.raises(ValueError):
            client.get_run("")
        with pytest.raises(ValueError):
            client.update_run("", status="failed")
        with pytest.raises(TypeError):
            client.get_validation(None)  # type: ignore[arg-type]
    assert rec.requests == []


# -- what is sent -----------------------------------------------------------


def test_only_fields_that_are_not_none_are_sent() -> None:
    rec = Recorder(RUN)
    with sync_client(rec, api_key="grk_x") as client:
        client.create_run("c1")
        assert rec.body() == {"contract_id": "c1"}
        assert rec.last.method == "POST" and rec.last.headers["Content-Type"] == "application/json"

        client.create_run("c1", pipeline_name=None, status="running", metadata={})
        assert rec.body() == {"contract_id": "c1", "status": "running", "metadata": {}}

        client.update_run("run_1", metadata={"drop": None, "keep": 1})
        assert rec.last.method == "PATCH"
        assert rec.body() == {"metadata": {"drop": None, "keep": 1}}  # null inside metadata removes a key

        client.record_validation("c1", "passed")
        assert rec.body() == {"contract_id": "c1", "status": "passed"}

        client.list_runs()
        assert dict(rec.last.url.params) == {"limit": "50", "offset": "0"}
        client.list_validations(run_id="run_1", status="failed", limit=5, offset=10)
        assert dict(rec.last.url.params) == {"run_id": "run_1", "status": "failed", "limit": "5", "offset": "10"}
        assert rec.last.content == b""


def test_every_field_is_sent() -> None:
    rec = Recorder(RUN)
    started = datetime(2024, 1, 15, 10, 0, tzinfo=timezone.utc)
    with sync_client(rec) as client:
        client.create_run("c", "p", "pid", "completed", {"k": "v"}, started, "2024-01-15T11:00:00Z")
        assert rec.body() == {
            "contract_id": "c", "pipeline_name": "p", "pipeline_id": "pid", "status": "completed",
            "metadata": {"k": "v"}, "started_at": "2024-01-15T10:00:00Z", "completed_at": "2024-01-15T11:00:00Z",
        }
        client.update_run("run_1", "failed", {"a": 1}, "p2", "pid2")
        assert rec.body() == {"status": "failed", "metadata": {"a": 1}, "pipeline_name": "p2", "pipeline_id": "pid2"}
        client.record_validation(
            "c", "failed", "run_1",
            errors=[{"code": "e", "message": "m", "path": "x", "row_count": 2}],
            warnings=({"code": "w", "message": "m"},),
            metrics={"duration_ms": 5}, metadata={"m": 1}, recorded_at=date(2024, 1, 2),
        )
        assert rec.body() == {
            "contract_id": "c", "run_id": "run_1", "status": "failed",
            "errors": [{"code": "e", "message": "m", "path": "x", "row_count": 2}],
            "warnings": [{"code": "w", "message": "m"}],
            "metrics": {"duration_ms": 5}, "metadata": {"m": 1}, "recorded_at": "2024-01-02",
        }


def test_metadata_may_hold_datetimes_and_uuids_but_not_nan() -> None:
    rec = Recorder(RUN)
    run_uuid = uuid.UUID(int=7)
    with sync_client(rec) as client:
        client.create_run("c", metadata={"at": datetime(2024, 1, 1, 12, tzinfo=timezone.utc), "day": date(2024, 1, 2), "id": run_uuid})
        assert rec.body()["metadata"] == {"at": "2024-01-01T12:00:00Z", "day": "2024-01-02", "id": str(run_uuid)}
        with pytest.raises(ValueError):
            client.record_validation("c", "passed", metrics={"ratio": float("nan")})
        with pytest.raises(TypeError):
            client.create_run("c", metadata={"x": object()})
        with pytest.raises(TypeError):
            client.create_run("c", metadata=[("a", 1)])  # type: ignore[arg-type]
    assert len(rec.requests) == 1


@pytest.mark.parametrize(
    "value, expected",
    [
        (datetime(2024, 1, 15, 10, 0), "2024-01-15T10:00:00"),  # naive: as is, no offset
        (datetime(2024, 1, 15, 10, 0, 0, 123456), "2024-01-15T10:00:00.123456"),
        (datetime(2024, 1, 15, 10, 0, tzinfo=timezone.utc), "2024-01-15T10:00:00Z"),
        (datetime(2024, 1, 15, 15, 30, tzinfo=timezone(timedelta(hours=5, minutes=30))), "2024-01-15T10:00:00Z"),
        (datetime(2024, 1, 15, 5, 0, tzinfo=timezone(timedelta(hours=-5))), "2024-01-15T10:00:00Z"),
        (date(2024, 1, 15), "2024-01-15"),
        ("2024-01-15T10:00:00+05:00", "2024-01-15T10:00:00+05:00"),
    ],
)
def test_format_datetime(value: Any, expected: str) -> None:
    assert format_datetime(value) == expected


def test_date_filters_on_the_wire() -> None:
    rec = Recorder({"items": [], "total": 0, "limit": 50, "offset": 0})
    with sync_client(rec) as client:
        client.list_runs(start_date=datetime(2024, 1, 15, 10, 0), end_date="2024-01-16T00:00:00+05:00")
        # '+' must be percent-encoded, or the server would read a space.
        assert "end_date=2024-01-16T00%3A00%3A00%2B05%3A00" in str(rec.last.url)
        assert rec.last.url.params["start_date"] == "2024-01-15T10:00:00"
        client.list_validations(start_date=date(2024, 1, 1), end_date=datetime(2024, 2, 1, tzinfo=timezone.utc))
        assert rec.last.url.params["start_date"] == "2024-01-01"
        assert rec.last.url.params["end_date"] == "2024-02-01T00:00:00Z"
        with pytest.raises(TypeError):
            client.list_runs(start_date=1705312800)  # type: ignore[arg-type]


# -- API key ---------------------------------------------------------------


def test_api_key_header(monkeypatch: pytest.MonkeyPatch) -> None:
    rec = Recorder(RUN)
    with sync_client(rec) as client:
        client.get_run("run_1")
    assert "X-API-Key" not in rec.last.headers

    monkeypatch.setenv("GRIOT_API_KEY", "grk_from_env")
    with sync_client(rec) as client:
        client.get_run("run_1")
        assert rec.last.headers["X-API-Key"] == "grk_from_env"
        assert repr(client) == "SyncRegistryClient(base_url='http://registry.test:8000', api_key=set)"
    with sync_client(rec, api_key="grk_explicit") as client:
        client.get_run("run_1")
    assert rec.last.headers["X-API-Key"] == "grk_explicit"
    assert rec.last.headers["User-Agent"].startswith("griot-registry-python/")

    monkeypatch.setenv("GRIOT_API_KEY", "")
    with sync_client(rec) as client:
        client.get_run("run_1")
    assert "X-API-Key" not in rec.last.headers


# -- errors ----------------------------------------------------------------


@pytest.mark.parametrize(
    "status, code, cls",
    [
        (400, "BAD_REQUEST", RequestValidationError),
        (401, "UNAUTHORIZED", AuthenticationError),
        (403, "FORBIDDEN", AuthenticationError),
        (404, "NOT_FOUND", NotFoundError),
        (409, "INVALID_TRANSITION", ConflictError),
        (412, "PRECONDITION_FAILED", PreconditionFailedError),
        (413, "PAYLOAD_TOO_LARGE", RegistryError),
        (415, "UNSUPPORTED_MEDIA_TYPE", RegistryError),
        (422, "VALIDATION_ERROR", RequestValidationError),
        (500, "INTERNAL", RegistryError),
    ],
)
def test_status_maps_to_error_class(status: int, code: str, cls: type) -> None:
    with sync_client(Recorder(error(status, code, "why"))) as client:
        with pytest.raises(RegistryError) as info:
            client.create_run("c")
    assert type(info.value) is cls
    assert (info.value.status_code, info.value.code, info.value.message) == (status, code, "why")
    assert str(info.value) == f"{status} {code}: why (POST http://registry.test:8000/api/v1/runs)"
    with sync_client(Recorder(error(status, code, "why"))) as client:
        with pytest.raises(cls):
            client.update_run("run_1", status="failed", if_match=2)


def test_error_bodies_that_are_not_the_registry_shape() -> None:
    html = httpx.Response(502, text="<html><body><h1>502 Bad Gateway</h1></body></html>")
    with sync_client(Recorder(html), max_retries=0) as client:
        with pytest.raises(RegistryError) as info:
            client.get_run("run_1")
    assert info.value.status_code == 502 and info.value.code is None
    assert "502 Bad Gateway" in info.value.message

    with sync_client(Recorder(httpx.Response(404, json={"detail": "Not Found"}))) as client:
        with pytest.raises(NotFoundError) as nf:
            client.get_run("run_1")
    assert nf.value.message == "Not Found" and nf.value.code is None

    with sync_client(Recorder(httpx.Response(500))) as client:
        with pytest.raises(RegistryError) as empty:
            client.create_run("c")
    assert empty.value.message == "Internal Server Error"

    with sync_client(Recorder(httpx.Response(200, text="not json"))) as client:
        with pytest.raises(RegistryError, match="not JSON"):
            client.health()


def test_errors_survive_pickling() -> None:
    err = NotFoundError(404, "NOT_FOUND", "gone", method="GET", url="http://h/api/v1/runs/x")
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is NotFoundError and str(copy) == str(err)
    conn = pickle.loads(pickle.dumps(RegistryConnectionError("cannot reach http://h", url="http://h")))
    assert conn.status_code is None and conn.url == "http://h" and str(conn) == "cannot reach http://h"
    timeout = pickle.loads(pickle.dumps(RunWaitTimeout("run_1", 2.5, RUN)))
    assert type(timeout) is RunWaitTimeout and timeout.run == RUN and timeout.timeout == 2.5
    assert str(timeout) == "run run_1 is still pending after waiting 2.5 s"


def test_run_wait_timeout_is_a_timeout_error() -> None:
    err = RunWaitTimeout("run_1", 30, {**RUN, "status": "running"})
    assert isinstance(err, RegistryError) and isinstance(err, TimeoutError)
    assert (err.status_code, err.code, err.run_id, err.timeout) == (None, None, "run_1", 30)
    assert (err.errno, err.strerror, err.filename) == (None, None, None)
    assert str(err) == "run run_1 is still running after waiting 30 s"
    assert repr(err).startswith("RunWaitTimeout(status_code=None, code=None")


# -- retries ---------------------------------------------------------------


@pytest.mark.parametrize("status", [502, 503, 504])
def test_get_is_retried_on_gateway_errors(status: int, monkeypatch: pytest.MonkeyPatch) -> None:
    delays: List[float] = []
    monkeypatch.setattr(time, "sleep", delays.append)
    rec = Recorder(error(status, "INTERNAL"), error(status, "INTERNAL"), RUN)
    with SyncRegistryClient("http://h", transport=httpx.MockTransport(rec)) as client:
        assert client.get_run("run_1") == RUN
    assert len(rec.requests) == 3
    assert delays == [0.5, 1.0]  # exponential backoff from retry_backoff=0.5


def test_get_gives_up_after_max_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    delays: List[float] = []
    monkeypatch.setattr(time, "sleep", delays.append)
    rec = Recorder(error(503, "INTERNAL", "busy"))
    with SyncRegistryClient("http://h", transport=httpx.MockTransport(rec), max_retries=4, retry_backoff=1) as client:
        with pytest.raises(RegistryError) as info:
            client.list_runs()
    assert info.value.status_code == 503 and info.value.message == "busy"
    assert len(rec.requests) == 5
    assert delays == [1, 2, 4, 8]


def test_retry_after_is_honoured_when_short(monkeypatch: pytest.MonkeyPatch) -> None:
    delays: List[float] = []
    monkeypatch.setattr(time, "sleep", delays.append)
    rec = Recorder(httpx.Response(503, headers={"Retry-After": "3"}), httpx.Response(503, headers={"Retry-After": "3600"}), RUN)
    with SyncRegistryClient("http://h", transport=httpx.MockTransport(rec), retry_backoff=0.5) as client:
        client.get_run("run_1")
    assert delays == [3.0, 1.0]


def test_get_is_retried_on_connection_errors() -> None:
    rec = Recorder(httpx.ConnectError("refused"), httpx.RemoteProtocolError("dropped"), RUN)
    with sync_client(rec) as client:
        assert client.get_run("run_1") == RUN
    assert len(rec.requests) == 3


def test_connection_error_names_the_url_after_retries() -> None:
    rec = Recorder(httpx.ConnectError("[Errno 111] Connection refused"))
    with sync_client(rec, max_retries=2) as client:
        with pytest.raises(RegistryConnectionError) as info:
            client.list_validations(contract_id="c")
    assert len(rec.requests) == 3
    err = info.value
    assert err.url == "http://registry.test:8000/api/v1/validations" and err.method == "GET"
    assert str(err) == (
        "cannot reach the registry at http://registry.test:8000/api/v1/validations: "
        "[Errno 111] Connection refused (gave up after 3 attempts)"
    )
    assert isinstance(err.__cause__, httpx.ConnectError)


def test_read_timeout_is_not_retried() -> None:
    rec = Recorder(httpx.ReadTimeout("slow"))
    with sync_client(rec) as client:
        with pytest.raises(RegistryConnectionError, match="no answer within the timeout"):
            client.get_run("run_1")
    assert len(rec.requests) == 1


@pytest.mark.parametrize("answer", [error(503, "INTERNAL"), error(502, "INTERNAL"), httpx.ConnectError("refused")])
def test_writes_are_never_retried(answer: Any) -> None:
    rec = Recorder(answer, RUN)
    with sync_client(rec) as client:
        for write in (
            lambda: client.update_run("run_1", status="failed"),
            lambda: client.update_run("run_1", status="failed", if_match=3),
            lambda: client.record_validation("c", "passed"),
            lambda: client.heartbeat("run_1"),
        ):
            before = len(rec.requests)
            rec.answers = [answer, RUN]
            with pytest.raises(RegistryError):
                write()
            assert len(rec.requests) == before + 1


def test_retry_settings_are_checked() -> None:
    with pytest.raises(ValueError):
        SyncRegistryClient("http://h", max_retries=-1)
    with pytest.raises(ValueError):
        RegistryClient("http://h", retry_backoff=-1)


@pytest.mark.anyio
async def test_async_retries_and_writes() -> None:
    rec = Recorder(error(504, "INTERNAL"), httpx.ReadError("reset"), RUN)
    async with async_client(rec) as client:
        assert await client.get_run("run_1") == RUN
        assert len(rec.requests) == 3

        rec.answers = [error(503, "INTERNAL"), RUN]
        with pytest.raises(RegistryError) as info:
            await client.record_validation("c", "passed")
        assert info.value.status_code == 503 and len(rec.requests) == 4

        rec.answers = [httpx.ConnectError("refused")]
        with pytest.raises(RegistryConnectionError, match=r"gave up after 4 attempts"):
            await client.health()
        assert len(rec.requests) == 8
        rec.answers = [httpx.ConnectError("refused")]
        with pytest.raises(RegistryConnectionError) as down:
            await client.update_run("run_1", status="failed")
        assert len(rec.requests) == 9 and "gave up" not in str(down.value)


@pytest.mark.anyio
async def test_async_sends_the_same_requests() -> None:
    rec = Recorder(RUN)
    async with async_client(rec, api_key="grk_k") as client:
        await client.create_run("c", status="running", started_at=datetime(2024, 1, 1))
        assert rec.body() == {"contract_id": "c", "status": "running", "started_at": "2024-01-01T00:00:00"}
        assert rec.last.headers["X-API-Key"] == "grk_k"
        await client.get_validation_stats("c", days=7, granularity="week")
        assert str(rec.last.url) == "http://registry.test:8000/api/v1/validations/stats/c?days=7&granularity=week"


# -- idempotent creates ----------------------------------------------------


def test_create_sends_a_new_idempotency_key_each_call() -> None:
    rec = Recorder(RUN)
    with sync_client(rec) as client:
        client.create_run("c")
        client.create_run("c")
    keys = [r.headers["Idempotency-Key"] for r in rec.requests]
    assert keys[0] != keys[1]
    assert all(uuid.UUID(k).version == 4 for k in keys)
    assert rec.body() == {"contract_id": "c"}  # the key is a header, not a field


@pytest.mark.parametrize(
    "failure",
    [error(502, "INTERNAL"), error(503, "INTERNAL"), error(504, "INTERNAL"), httpx.ConnectError("refused"),
     httpx.ReadError("reset"), httpx.RemoteProtocolError("dropped"), httpx.WriteError("broken pipe")],
    ids=["502", "503", "504", "connect", "read", "protocol", "write"],
)
def test_create_is_retried_with_the_same_key(failure: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    delays: List[float] = []
    monkeypatch.setattr(time, "sleep", delays.append)
    rec = Recorder(failure, failure, RUN)
    with SyncRegistryClient("http://h", transport=httpx.MockTransport(rec)) as client:
        assert client.create_run("c", status="running", heartbeat_timeout_seconds=60) == RUN
    assert len(rec.requests) == 3
    assert delays == [0.5, 1.0]  # the same backoff as reads
    assert len({r.headers["Idempotency-Key"] for r in rec.requests}) == 1
    assert len({r.content for r in rec.requests}) == 1  # and the same body
    assert rec.body() == {"contract_id": "c", "status": "running", "heartbeat_timeout_seconds": 60}


def test_create_gives_up_after_max_retries() -> None:
    rec = Recorder(error(503, "INTERNAL", "busy"))
    with sync_client(rec, max_retries=2) as client:
        with pytest.raises(RegistryError) as info:
            client.create_run("c")
    assert info.value.status_code == 503 and len(rec.requests) == 3


@pytest.mark.parametrize(
    "answer", [httpx.ReadTimeout("slow"), error(500, "INTERNAL"), error(422, "VALIDATION_ERROR")], ids=["timeout", "500", "422"]
)
def test_create_is_not_retried_after_other_failures(answer: Any) -> None:
    rec = Recorder(answer, RUN)
    with sync_client(rec) as client:
        with pytest.raises(RegistryError):
            client.create_run("c")
    assert len(rec.requests) == 1


def test_explicit_idempotency_key() -> None:
    rec = Recorder(RUN)
    with sync_client(rec) as client:
        client.create_run("c", idempotency_key="airflow:dag:2024-01-15:1")
        assert rec.last.headers["Idempotency-Key"] == "airflow:dag:2024-01-15:1"
        client.create_run("c", idempotency_key="x" * 255)
        for bad in ["", "x" * 256, "caf\u00e9", "line\nbreak", " lead", "trail ", "\x7f"]:
            with pytest.raises(ValueError):
                client.create_run("c", idempotency_key=bad)
        with pytest.raises(TypeError):
            client.create_run("c", idempotency_key=uuid.uuid4())  # type: ignore[arg-type]
    assert len(rec.requests) == 2


@pytest.mark.anyio
async def test_async_create_is_retried_with_the_same_key() -> None:
    rec = Recorder(httpx.ConnectError("refused"), error(502, "INTERNAL"), RUN)
    async with async_client(rec) as client:
        assert await client.create_run("c", idempotency_key="k-1") == RUN
    assert [r.headers["Idempotency-Key"] for r in rec.requests] == ["k-1", "k-1", "k-1"]


# -- lifecycle requests ------------------------------------------------------


def test_update_with_if_match_and_heartbeat_timeout() -> None:
    rec = Recorder(RUN)
    with sync_client(rec) as client:
        client.update_run("run_1", metadata={"a": 1}, if_match=7)
        assert rec.last.headers["If-Match"] == '"7"'
        assert rec.body() == {"metadata": {"a": 1}}
        client.update_run("run_1", heartbeat_timeout_seconds=0)
        assert rec.body() == {"heartbeat_timeout_seconds": 0}  # 0 is sent: it removes the timeout
        assert "If-Match" not in rec.last.headers
        for bad, exc in (("7", TypeError), (True, TypeError), (1.0, TypeError), (-1, ValueError)):
            with pytest.raises(exc):
                client.update_run("run_1", status="failed", if_match=bad)  # type: ignore[arg-type]
    assert len(rec.requests) == 2


def test_heartbeat_request() -> None:
    rec = Recorder(RUN)
    with sync_client(rec, api_key="grk_k") as client:
        assert client.heartbeat("run/1") == RUN
    assert rec.last.method == "POST"
    assert str(rec.last.url) == "http://registry.test:8000/api/v1/runs/run%2F1/heartbeat"
    assert rec.last.content == b"" and "Content-Type" not in rec.last.headers
    assert rec.last.headers["X-API-Key"] == "grk_k"


def test_stale_filter_and_events_on_the_wire() -> None:
    rec = Recorder({"items": [], "total": 0, "limit": 50, "offset": 0})
    with sync_client(rec) as client:
        client.list_runs(stale=True)
        assert dict(rec.last.url.params) == {"stale": "true", "limit": "50", "offset": "0"}
        client.list_runs(contract_id="c", stale=False, limit=5)
        assert dict(rec.last.url.params) == {"contract_id": "c", "stale": "false", "limit": "5", "offset": "0"}
        list(client.iter_runs(stale=True, page_size=10))
        assert dict(rec.last.url.params) == {"stale": "true", "limit": "10", "offset": "0"}
        client.list_run_events("run_1", limit=3, offset=6)
        assert str(rec.last.url) == "http://registry.test:8000/api/v1/runs/run_1/events?limit=3&offset=6"


def test_iter_run_events_walks_pages_oldest_first() -> None:
    rec = Recorder(
        {"items": [{"id": 1}, {"id": 2}], "total": 3, "limit": 2, "offset": 0},
        {"items": [{"id": 3}], "total": 3, "limit": 2, "offset": 2},
    )
    with sync_client(rec) as client:
        assert [e["id"] for e in client.iter_run_events("run_1", page_size=2)] == [1, 2, 3]
    assert [r.url.params["offset"] for r in rec.requests] == ["0", "2"]


# -- waiting -----------------------------------------------------------------


class Clock:
    """A fake monotonic clock: the wait endpoint and sleeps advance it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class WaitServer:
    """Answers the wait endpoint as the registry would: after the asked
    timeout, or as soon as the run is final (at ``final_at`` on the clock)."""

    def __init__(self, clock: Clock, final_at: Optional[float] = None, early: bool = False) -> None:
        self.clock = clock
        self.final_at = final_at
        self.early = early  # answer "not done" at once, like a misbehaving proxy
        self.asked: List[int] = []
        self.read_timeouts: List[Optional[float]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        asked = int(request.url.params["timeout"])
        self.asked.append(asked)
        self.read_timeouts.append(request.extensions["timeout"]["read"])
        assert request.url.path == "/api/v1/runs/run_1/wait"
        end = self.clock.now + (0 if self.early else asked)
        if self.final_at is not None and self.final_at <= end:
            self.clock.now = max(self.clock.now, self.final_at)
            return httpx.Response(200, json={"done": True, "run": {**RUN, "status": "completed"}})
        self.clock.now = end
        return httpx.Response(200, json={"done": False, "run": {**RUN, "status": "running"}})


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(_core, "monotonic", fake)
    monkeypatch.setattr(time, "sleep", fake.sleep)
    return fake


def test_wait_returns_the_final_run(clock: Clock) -> None:
    server = WaitServer(clock, final_at=clock.now + 75)
    with sync_client(server) as client:
        run = client.wait_for_run("run_1")
    assert run["status"] == "completed"
    assert server.asked == [30, 30, 30]  # poll_timeout each time, no timeout
    assert server.read_timeouts == [40.0, 40.0, 40.0]  # the client's 10 s on top of the server's wait
    assert clock.now == 1075


def test_wait_never_asks_for_more_than_is_left(clock: Clock) -> None:
    server = WaitServer(clock)
    with sync_client(server, timeout=5) as client:
        with pytest.raises(RunWaitTimeout) as info:
            client.wait_for_run("run_1", timeout=72.5, poll_timeout=30)
    assert server.asked == [30, 30, 12, 0]  # the last half second is slept, then one last look
    assert server.read_timeouts == [35.0, 35.0, 17.0, 5.0]
    assert clock.now == pytest.approx(1072.5)
    assert info.value.run["status"] == "running" and info.value.timeout == 72.5


def test_wait_with_a_short_timeout_and_poll(clock: Clock) -> None:
    server = WaitServer(clock, final_at=clock.now + 7)
    with sync_client(server) as client:
        assert client.wait_for_run("run_1", timeout=100, poll_timeout=5)["status"] == "completed"
        assert server.asked == [5, 5]
        server.asked.clear()
        server.final_at = None
        with pytest.raises(RunWaitTimeout):
            client.wait_for_run("run_1", timeout=0)
        assert server.asked == [0]


def test_wait_pauses_after_early_answers(clock: Clock) -> None:
    server = WaitServer(clock, early=True)
    with sync_client(server) as client:
        with pytest.raises(RunWaitTimeout):
            client.wait_for_run("run_1", timeout=3)
    # At most one look a second, not a busy loop.
    assert server.asked == [3, 2, 1, 0]


def test_wait_settings_are_checked() -> None:
    rec = Recorder({"done": True, "run": RUN})
    with sync_client(rec) as client:
        for kwargs, exc in (
            ({"poll_timeout": 0}, ValueError),
            ({"poll_timeout": 61}, ValueError),
            ({"timeout": -1}, ValueError),
            ({"timeout": "5"}, TypeError),
            ({"timeout": float("nan")}, ValueError),
            ({"poll_timeout": None}, TypeError),
        ):
            with pytest.raises(exc):
                client.wait_for_run("run_1", **kwargs)
        with pytest.raises(ValueError):
            client.wait_for_run("")
        assert rec.requests == []
        client.wait_for_run("run_1", poll_timeout=60)
        assert rec.last.url.params["timeout"] == "60"


def test_wait_reads_are_retried_and_odd_answers_refused() -> None:
    rec = Recorder(httpx.ConnectError("refused"), error(503, "INTERNAL"), {"done": True, "run": RUN})
    with sync_client(rec) as client:
        assert client.wait_for_run("run_1") == RUN
        assert len(rec.requests) == 3
        rec.answers = [{"unexpected": True}]
        with pytest.raises(RegistryError, match="without a run"):
            client.wait_for_run("run_1")


@pytest.mark.anyio
async def test_async_wait(clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    async def fake_sleep(seconds: float) -> None:
        clock.sleep(seconds)

    import anyio

    monkeypatch.setattr(anyio, "sleep", fake_sleep)
    server = WaitServer(clock)
    async with async_client(server) as client:
        with pytest.raises(RunWaitTimeout):
            await client.wait_for_run("run_1", timeout=45.25, poll_timeout=20)
        assert server.asked == [20, 20, 5, 0]
        assert server.read_timeouts == [30.0, 30.0, 15.0, 10.0]
        server.final_at = clock.now + 3
        assert (await client.wait_for_run("run_1"))["status"] == "completed"


# -- paging ----------------------------------------------------------------


def _page(ids: List[str], total: int, limit: int, offset: int) -> Dict[str, Any]:
    return {"items": [{"id": i} for i in ids], "total": total, "limit": limit, "offset": offset}


def test_iter_stops_on_a_short_page_and_skips_repeats() -> None:
    # A new run arrives between the first and second page, pushing "b" onto
    # the second page again: it must not be yielded twice.
    pages = [_page(["a", "b"], 4, 2, 0), _page(["b", "c"], 5, 2, 2), _page(["d"], 5, 2, 4)]
    rec = Recorder(*pages)
    with sync_client(rec) as client:
        assert [r["id"] for r in client.iter_runs(page_size=2)] == ["a", "b", "c", "d"]
    assert [r.url.params["offset"] for r in rec.requests] == ["0", "2", "4"]


def test_iter_stops_when_total_is_reached() -> None:
    rec = Recorder(_page(["a", "b"], 4, 2, 0), _page(["c", "d"], 4, 2, 2))
    with sync_client(rec) as client:
        assert [r["id"] for r in client.iter_runs(page_size=2)] == ["a", "b", "c", "d"]
    assert len(rec.requests) == 2  # no third request for an empty page
    assert all(r.url.params["limit"] == "2" for r in rec.requests)


def test_iter_makes_one_request_for_a_short_first_page() -> None:
    rec = Recorder(_page(["a"], 1, 100, 0))
    with sync_client(rec) as client:
        assert [v["id"] for v in client.iter_validations(contract_id="c")] == ["a"]
    assert len(rec.requests) == 1 and rec.last.url.params["contract_id"] == "c"


def test_iter_walks_pages_the_server_cut_short() -> None:
    # Over --max-page-bytes the server answers fewer items than asked, with
    # limit = the items it holds and truncated = true; nothing is skipped.
    def cut(ids: List[str], offset: int) -> Dict[str, Any]:
        page = _page(ids, 5, len(ids), offset)
        page["truncated"] = True
        return page

    rec = Recorder(cut(["a", "b"], 0), cut(["c"], 2), _page(["d", "e"], 5, 50, 3))
    with sync_client(rec) as client:
        assert [r["id"] for r in client.iter_runs(page_size=50)] == ["a", "b", "c", "d", "e"]
    assert [r.url.params["offset"] for r in rec.requests] == ["0", "2", "3"]


def test_pager_rejects_bad_page_sizes() -> None:
    for bad in (0, -1, True):
        with pytest.raises(ValueError):
            Pager(bad)
    assert Pager(1).page_size == 1


@pytest.mark.anyio
async def test_async_iter_walks_pages() -> None:
    rec = Recorder(_page(["a", "b"], 3, 2, 0), _page(["c"], 3, 2, 2))
    async with async_client(rec) as client:
        assert [r["id"] async for r in client.iter_runs(page_size=2)] == ["a", "b", "c"]
        rec.answers = [_page(["x"], 1, 5, 0)]
        assert [v["id"] async for v in client.iter_validations(page_size=5)] == ["x"]


def test_constants_are_what_the_docs_say() -> None:
    assert _core.DEFAULT_TIMEOUT == 10.0 and _core.DEFAULT_MAX_RETRIES == 3
    assert _core.RETRY_STATUSES == {502, 503, 504}


def test_tls_context_is_built_once_and_shared() -> None:
    shared = _core.resolve_verify(True)
    assert shared is _core.resolve_verify(True)
    assert _core.resolve_verify(False) is False
    custom = ssl.create_default_context()
    assert _core.resolve_verify(custom) is custom
    SyncRegistryClient("https://h", verify=False).close()
    SyncRegistryClient("https://h", verify=custom).close()
