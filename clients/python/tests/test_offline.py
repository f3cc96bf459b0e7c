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
    RegistryClient,
    RegistryConnectionError,
    RegistryError,
    RequestValidationError,
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
