"""What the sync and async clients share: URLs, request building, retry
policy, response decoding and paging. No I/O happens here."""

from __future__ import annotations

import functools
import json
import math
import os
import ssl
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timezone
from time import monotonic
from typing import Any, Dict, List, Mapping, Optional, Sequence, Set, Union, cast
from urllib.parse import quote

import httpx

from ._version import __version__
from .errors import (
    RegistryConnectionError,
    RegistryError,
    RunWaitTimeout,
    error_class_for_status,
)
from .types import Run

API_PREFIX = "/api/v1"
API_KEY_ENV = "GRIOT_API_KEY"
DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_RETRIES = 3
DEFAULT_RETRY_BACKOFF = 0.5
MAX_RETRY_DELAY = 8.0
DEFAULT_PAGE_SIZE = 100
#: The longest wait the server's ``/runs/{id}/wait`` accepts, in seconds.
MAX_WAIT_SECONDS = 60
DEFAULT_POLL_TIMEOUT = 30
USER_AGENT = f"griot-registry-python/{__version__}"

#: Statuses after which a GET is tried again: the registry or a proxy in front
#: of it is restarting or overloaded.
RETRY_STATUSES = frozenset({502, 503, 504})

#: Transport failures after which a GET (or a create with an
#: ``Idempotency-Key``) is tried again. Read and write
#: timeouts are not among them: the server got the request and is slow, and
#: asking again would only multiply the wait.
RETRY_EXCEPTIONS = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,
)

DateLike = Union[datetime, date, str]
"""A point in time as the clients accept it: a ``datetime`` (naive ones are
taken as UTC by the server), a ``date`` (midnight UTC) or a string that is
sent as given."""

TimeoutLike = Union[float, httpx.Timeout, None]


# --------------------------------------------------------------------------
# Configuration


def normalize_base_url(base_url: str) -> str:
    """The registry's root URL: no trailing slash and no ``/api/v1`` suffix,
    so ``http://h:8000``, ``http://h:8000/`` and ``http://h:8000/api/v1/``
    all give ``http://h:8000``. A path prefix before ``/api/v1`` is kept."""
    if not isinstance(base_url, str) or not base_url.strip():
        raise ValueError(
            "base_url must be the registry's URL, such as http://localhost:8000"
        )
    url = base_url.strip().rstrip("/")
    if url.endswith(API_PREFIX):
        url = url[: -len(API_PREFIX)].rstrip("/")
    try:
        parsed = httpx.URL(url)
    except Exception as exc:  # httpx.InvalidURL and friends
        raise ValueError(f"base_url {base_url!r} is not a valid URL: {exc}") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(
            f"base_url {base_url!r} must be an http:// or https:// URL with a host, "
            "such as http://localhost:8000"
        )
    if parsed.query or parsed.fragment:
        raise ValueError(f"base_url {base_url!r} must not have a query or fragment")
    return url


def resolve_api_key(api_key: Optional[str]) -> Optional[str]:
    """The key given, else ``$GRIOT_API_KEY``, else ``None`` (reads only)."""
    if api_key is None:
        api_key = os.environ.get(API_KEY_ENV) or None
    if api_key is not None:
        if not isinstance(api_key, str):
            raise TypeError("api_key must be a string")
        api_key = api_key.strip() or None
    return api_key


def default_headers(
    api_key: Optional[str], extra: Optional[Mapping[str, str]]
) -> Dict[str, str]:
    headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
    if extra:
        headers.update(extra)
    if api_key:
        headers["X-API-Key"] = api_key
    return headers


VerifyLike = Union[bool, ssl.SSLContext]


@functools.lru_cache(maxsize=1)
def _shared_ssl_context() -> ssl.SSLContext:
    return httpx.create_ssl_context()


def resolve_verify(verify: VerifyLike) -> VerifyLike:
    """httpx builds a new TLS context, loading every CA certificate, for each
    client (tens of milliseconds); the pipeline patterns open a client per
    task, so the default verifying context is built once and shared."""
    return _shared_ssl_context() if verify is True else verify


def check_retry_settings(max_retries: int, retry_backoff: float) -> None:
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise ValueError("max_retries must be an integer >= 0")
    if retry_backoff < 0:
        raise ValueError("retry_backoff must be >= 0")


def retry_delay(
    attempt: int, backoff: float, response: Optional[httpx.Response] = None
) -> float:
    """Seconds to wait before retry number ``attempt + 1`` (``attempt``
    counts from 0): ``backoff * 2**attempt``, at most 8 s, or longer when a
    502/503/504 answer asks for it with a short ``Retry-After`` in seconds."""
    delay = min(MAX_RETRY_DELAY, backoff * (2.0**attempt))
    if response is not None:
        retry_after = response.headers.get("Retry-After", "")
        try:
            asked = float(retry_after)
        except ValueError:
            asked = 0.0
        if 0 < asked <= MAX_RETRY_DELAY:
            delay = max(delay, asked)
    return delay


# --------------------------------------------------------------------------
# Requests


@dataclass(frozen=True)
class Call:
    """One API request, before it is sent."""

    method: str
    path: str
    params: Optional[Dict[str, Union[str, int]]] = None
    body: Optional[Dict[str, Any]] = None
    #: Headers of this request only (``Idempotency-Key``, ``If-Match``).
    headers: Optional[Dict[str, str]] = None
    #: The server deduplicates this write (it carries an ``Idempotency-Key``),
    #: so sending it again cannot record anything twice.
    idempotent: bool = False
    #: Seconds the server may hold this request before answering (a long
    #: poll); the read timeout is extended by as much.
    server_wait: Optional[float] = None

    @property
    def retryable(self) -> bool:
        # Only reads and deduplicated creates are safe to send twice: any
        # other repeated POST or PATCH could record a second validation or
        # apply a change twice.
        return self.method == "GET" or self.idempotent

    def request_headers(self, has_body: bool) -> Optional[Dict[str, str]]:
        if not has_body and not self.headers:
            return None
        headers = dict(JSON_HEADERS) if has_body else {}
        headers.update(self.headers or {})
        return headers

    def timeout(self, base: httpx.Timeout) -> httpx.Timeout:
        """The client's timeout, with room for the server's wait added to the
        read timeout so that a long poll is not cut short."""
        if not self.server_wait or base.read is None:
            return base
        return httpx.Timeout(
            connect=base.connect,
            read=base.read + self.server_wait,
            write=base.write,
            pool=base.pool,
        )

    def encoded_body(self) -> Optional[bytes]:
        if self.body is None:
            return None
        try:
            text = json.dumps(
                self.body, default=_json_default, allow_nan=False, separators=(",", ":")
            )
        except ValueError as exc:
            raise ValueError(f"the request body cannot be sent as JSON: {exc}") from exc
        return text.encode("utf-8")


JSON_HEADERS = {"Content-Type": "application/json"}


def _json_default(value: Any) -> Any:
    # Conveniences for metadata and metrics: timestamps and ids that
    # pipelines commonly carry. Anything else must already be JSON.
    if isinstance(value, (datetime, date)):
        return format_datetime(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(
        f"Object of type {type(value).__name__} is not JSON serializable; "
        "convert it to a str, number, bool, None, list or dict first"
    )


def format_datetime(value: DateLike, name: str = "value") -> str:
    """Render a date filter or timestamp for the server.

    * aware ``datetime``: RFC 3339 in UTC (``2024-01-15T05:00:00Z``);
    * naive ``datetime``: as is, without offset (``2024-01-15T10:00:00``),
      which the server takes as UTC;
    * ``date``: ``YYYY-MM-DD`` (midnight UTC);
    * ``str``: sent unchanged.
    """
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            return value.isoformat()
        text = value.astimezone(timezone.utc).isoformat()
        return text[: -len("+00:00")] + "Z" if text.endswith("+00:00") else text
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        return value
    raise TypeError(
        f"{name} must be a datetime, a date or a string, not {type(value).__name__}"
    )


def _optional_datetime(value: Optional[DateLike], name: str) -> Optional[str]:
    return None if value is None else format_datetime(value, name)


def _segment(value: str, name: str) -> str:
    """One path segment, percent-encoded (ids may hold any character)."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, not {type(value).__name__}")
    if not value:
        raise ValueError(f"{name} must not be empty")
    return quote(value, safe="")


def _compact(**fields: Any) -> Dict[str, Any]:
    """Only the fields that are not ``None``."""
    return {key: value for key, value in fields.items() if value is not None}


def _object(value: Optional[Mapping[str, Any]], name: str) -> Optional[Dict[str, Any]]:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise TypeError(f"{name} must be a mapping (a JSON object), not {type(value).__name__}")
    return dict(value)


def _objects(
    value: Optional[Sequence[Mapping[str, Any]]], name: str
) -> Optional[List[Dict[str, Any]]]:
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(f"{name} must be a list of mappings")
    return [dict(item) for item in value]


def health_call() -> Call:
    return Call("GET", "/health")


MAX_IDEMPOTENCY_KEY_LENGTH = 255


def new_idempotency_key() -> str:
    """A fresh ``Idempotency-Key``: a random UUID (version 4)."""
    return str(uuid.uuid4())


def check_idempotency_key(key: str) -> str:
    """The server takes 1 to 255 printable ASCII characters; refuse anything
    else here, before a request is made with a key it would not honour."""
    if not isinstance(key, str):
        raise TypeError(f"idempotency_key must be a string, not {type(key).__name__}")
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH:
        raise ValueError(
            f"idempotency_key must be 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} characters long, "
            f"not {len(key)}"
        )
    if any(not " " <= char <= "~" for char in key) or key != key.strip():
        raise ValueError(
            "idempotency_key must be printable ASCII without leading or trailing "
            f"spaces (a UUID is a good choice), not {key!r}"
        )
    return key


def create_run_call(
    contract_id: str,
    pipeline_name: Optional[str],
    pipeline_id: Optional[str],
    status: Optional[str],
    metadata: Optional[Mapping[str, Any]],
    started_at: Optional[DateLike],
    completed_at: Optional[DateLike],
    heartbeat_timeout_seconds: Optional[int] = None,
    idempotency_key: Optional[str] = None,
) -> Call:
    """A create that can be retried: it carries an ``Idempotency-Key`` (the
    given one, or a new UUID), the same on every attempt, so the server
    creates the run at most once."""
    key = new_idempotency_key() if idempotency_key is None else idempotency_key
    return Call(
        "POST",
        f"{API_PREFIX}/runs",
        body=_compact(
            contract_id=contract_id,
            pipeline_name=pipeline_name,
            pipeline_id=pipeline_id,
            status=status,
            metadata=_object(metadata, "metadata"),
            started_at=_optional_datetime(started_at, "started_at"),
            completed_at=_optional_datetime(completed_at, "completed_at"),
            heartbeat_timeout_seconds=heartbeat_timeout_seconds,
        ),
        headers={"Idempotency-Key": check_idempotency_key(key)},
        idempotent=True,
    )


def get_run_call(run_id: str) -> Call:
    return Call("GET", f"{API_PREFIX}/runs/{_segment(run_id, 'run_id')}")


def _if_match(version: Optional[int]) -> Optional[Dict[str, str]]:
    if version is None:
        return None
    if isinstance(version, bool) or not isinstance(version, int):
        raise TypeError(
            f"if_match must be a run's version (an int), not {type(version).__name__}"
        )
    if version < 0:
        raise ValueError("if_match must be a run's version, an integer >= 0")
    return {"If-Match": f'"{version}"'}


def update_run_call(
    run_id: str,
    status: Optional[str],
    metadata: Optional[Mapping[str, Any]],
    pipeline_name: Optional[str],
    pipeline_id: Optional[str],
    heartbeat_timeout_seconds: Optional[int] = None,
    if_match: Optional[int] = None,
) -> Call:
    return Call(
        "PATCH",
        f"{API_PREFIX}/runs/{_segment(run_id, 'run_id')}",
        body=_compact(
            status=status,
            metadata=_object(metadata, "metadata"),
            pipeline_name=pipeline_name,
            pipeline_id=pipeline_id,
            heartbeat_timeout_seconds=heartbeat_timeout_seconds,
        ),
        headers=_if_match(if_match),
    )


def heartbeat_call(run_id: str) -> Call:
    # No body: the server needs none.
    return Call("POST", f"{API_PREFIX}/runs/{_segment(run_id, 'run_id')}/heartbeat")


def list_run_events_call(run_id: str, limit: int, offset: int) -> Call:
    return Call(
        "GET",
        f"{API_PREFIX}/runs/{_segment(run_id, 'run_id')}/events",
        params={"limit": limit, "offset": offset},
    )


def wait_for_run_call(run_id: str, timeout: int) -> Call:
    return Call(
        "GET",
        f"{API_PREFIX}/runs/{_segment(run_id, 'run_id')}/wait",
        params={"timeout": timeout},
        server_wait=timeout,
    )


def list_runs_call(
    contract_id: Optional[str],
    pipeline_name: Optional[str],
    status: Optional[str],
    start_date: Optional[DateLike],
    end_date: Optional[DateLike],
    limit: int,
    offset: int,
    stale: Optional[bool] = None,
    cursor: Optional[str] = None,
) -> Call:
    return Call(
        "GET",
        f"{API_PREFIX}/runs",
        params=_compact(
            contract_id=contract_id,
            pipeline_name=pipeline_name,
            status=status,
            start_date=_optional_datetime(start_date, "start_date"),
            end_date=_optional_datetime(end_date, "end_date"),
            stale=None if stale is None else ("true" if stale else "false"),
            limit=limit,
            **_position(offset, cursor),
        ),
    )


def record_validation_call(
    contract_id: str,
    status: str,
    run_id: Optional[str],
    errors: Optional[Sequence[Mapping[str, Any]]],
    warnings: Optional[Sequence[Mapping[str, Any]]],
    metrics: Optional[Mapping[str, Any]],
    metadata: Optional[Mapping[str, Any]],
    recorded_at: Optional[DateLike],
) -> Call:
    return Call(
        "POST",
        f"{API_PREFIX}/validations",
        body=_compact(
            contract_id=contract_id,
            run_id=run_id,
            status=status,
            errors=_objects(errors, "errors"),
            warnings=_objects(warnings, "warnings"),
            metrics=_object(metrics, "metrics"),
            metadata=_object(metadata, "metadata"),
            recorded_at=_optional_datetime(recorded_at, "recorded_at"),
        ),
    )


def get_validation_call(validation_id: str) -> Call:
    return Call(
        "GET", f"{API_PREFIX}/validations/{_segment(validation_id, 'validation_id')}"
    )


def list_validations_call(
    contract_id: Optional[str],
    run_id: Optional[str],
    status: Optional[str],
    start_date: Optional[DateLike],
    end_date: Optional[DateLike],
    limit: int,
    offset: int,
    cursor: Optional[str] = None,
) -> Call:
    return Call(
        "GET",
        f"{API_PREFIX}/validations",
        params=_compact(
            contract_id=contract_id,
            run_id=run_id,
            status=status,
            start_date=_optional_datetime(start_date, "start_date"),
            end_date=_optional_datetime(end_date, "end_date"),
            limit=limit,
            **_position(offset, cursor),
        ),
    )


def _position(offset: int, cursor: Optional[str]) -> Dict[str, Any]:
    """A page's start: ``offset`` items after a cursor (the
    ``next_cursor`` of the page before) or after the top of the list."""
    return _compact(offset=offset, cursor=cursor or None)


def validation_stats_call(contract_id: str, days: int, granularity: str) -> Call:
    return Call(
        "GET",
        f"{API_PREFIX}/validations/stats/{_segment(contract_id, 'contract_id')}",
        params=_compact(days=days, granularity=granularity),
    )


# --------------------------------------------------------------------------
# Responses


def decode_response(response: httpx.Response) -> Any:
    """The JSON of a 2xx answer; raise the matching :class:`RegistryError`
    for anything else."""
    method = response.request.method
    url = _url_without_query(response.request.url)
    if not 200 <= response.status_code < 300:
        raise error_from_response(response)
    try:
        return response.json()
    except ValueError:
        raise RegistryError(
            response.status_code,
            None,
            f"the server answered with a body that is not JSON: {_snippet(response.text)!r}",
            method=method,
            url=url,
        ) from None


def error_from_response(response: httpx.Response) -> RegistryError:
    """Turn an error answer into the exception for its status.

    The registry's errors look like ``{"detail": {"code", "message"}}``;
    other shapes (a proxy's HTML page, a plain ``{"detail": "..."}``) still
    give a useful message.
    """
    code: Optional[str] = None
    message: Optional[str] = None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        detail = body.get("detail")
        if isinstance(detail, dict):
            if isinstance(detail.get("code"), str):
                code = detail["code"]
            if isinstance(detail.get("message"), str):
                message = detail["message"]
        elif isinstance(detail, str):
            message = detail
    if not message:
        message = _snippet(response.text) or response.reason_phrase or "no details given"
    cls = error_class_for_status(response.status_code)
    return cls(
        response.status_code,
        code,
        message,
        method=response.request.method,
        url=_url_without_query(response.request.url),
    )


def connection_error(
    call: Call, url: str, exc: Exception, attempts: int
) -> RegistryConnectionError:
    if isinstance(exc, httpx.TimeoutException):
        why = f"no answer within the timeout ({type(exc).__name__})"
    else:
        why = str(exc) or type(exc).__name__
    message = f"cannot reach the registry at {url}: {why}"
    if attempts > 1:
        message += f" (gave up after {attempts} attempts)"
    return RegistryConnectionError(message, method=call.method, url=url)


def _url_without_query(url: httpx.URL) -> str:
    return str(url.copy_with(query=None, fragment=None))


def _snippet(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------
# Paging


class Pager:
    """Walks the pages of a list endpoint: by ``next_cursor`` when the
    server sends one (each page costs the server the same, however deep,
    and new items cannot shift the walk), else by ``offset``.

    Lists are newest first, so with offsets runs or validations added while
    the walk is under way push older ones towards later pages; items
    already yielded are skipped when that brings them round again. Every
    item that existed when the walk started is yielded exactly once.
    """

    def __init__(self, page_size: int) -> None:
        if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
            raise ValueError("page_size must be an integer >= 1")
        self.page_size = page_size
        self.offset = 0
        #: Where the next page starts, once a page said so.
        self.cursor: Optional[str] = None
        self.done = False
        self._seen: Set[str] = set()

    def take(self, page: Mapping[str, Any]) -> List[Any]:
        """Record a fetched page; return its items not yielded before."""
        items = list(page.get("items") or [])
        fresh = []
        for item in items:
            item_id = item.get("id") if isinstance(item, dict) else None
            if item_id is not None:
                if item_id in self._seen:
                    continue
                self._seen.add(item_id)
            fresh.append(item)
        if "next_cursor" in page:
            next_cursor = page.get("next_cursor")
            self.cursor = next_cursor if isinstance(next_cursor, str) and next_cursor else None
            self.done = self.cursor is None or not items
            return fresh
        self.offset += len(items)
        limit = page.get("limit") or self.page_size
        total = page.get("total")
        if not items or len(items) < limit or (isinstance(total, int) and self.offset >= total):
            self.done = True
        return fresh

    @property
    def next_offset(self) -> int:
        """The offset to ask for: 0 once a cursor says where to start."""
        return 0 if self.cursor else self.offset


# --------------------------------------------------------------------------
# Waiting


def _seconds(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, not {value!r}")
    if math.isnan(value):
        raise ValueError(f"{name} must be a number of seconds, not NaN")
    return float(value)


class RunWaiter:
    """Paces ``wait_for_run``: how long each call to ``/runs/{id}/wait``
    asks the server to hold on, and when to give up.

    The server waits whole seconds, at most 60; each call asks for
    ``poll_timeout`` seconds, or less when the caller's ``timeout`` has less
    left, so no call outlasts it. The fraction of a second left at the end,
    which the server cannot be asked to wait, is slept locally before a last
    check. An answer that comes back early without the run being final (a
    restarting server, a proxy) is followed by a short pause, so a loop
    without timeout never hammers the registry.
    """

    def __init__(
        self, run_id: str, timeout: Optional[float], poll_timeout: float
    ) -> None:
        poll = _seconds(poll_timeout, "poll_timeout")
        if not 1 <= poll <= MAX_WAIT_SECONDS:
            raise ValueError(
                f"poll_timeout must be between 1 and {MAX_WAIT_SECONDS} seconds, not {poll_timeout!r}"
            )
        if timeout is not None:
            timeout = _seconds(timeout, "timeout")
            if timeout < 0:
                raise ValueError("timeout must be >= 0 seconds, or None to wait forever")
        self.run_id = run_id
        self.timeout = timeout
        self.poll_timeout = int(poll)
        self.deadline = None if timeout is None else monotonic() + timeout
        self.last_run: Optional[Run] = None
        self._asked = 0
        self._sent_at = 0.0

    def _remaining(self) -> float:
        assert self.deadline is not None
        return self.deadline - monotonic()

    def next_call(self) -> Call:
        """The next request to send."""
        if self.deadline is None:
            asked = self.poll_timeout
        else:
            asked = max(0, min(self.poll_timeout, math.floor(self._remaining())))
        self._asked = asked
        self._sent_at = monotonic()
        return wait_for_run_call(self.run_id, asked)

    def finished(self, answer: Any) -> Optional[Run]:
        """The final run when ``answer`` says it is done; ``None`` to go on.

        Raises :class:`RunWaitTimeout` when the caller's timeout has passed.
        """
        if not isinstance(answer, dict) or not isinstance(answer.get("run"), dict):
            raise RegistryError(
                200, None, f"the wait endpoint answered without a run: {_snippet(str(answer))!r}"
            )
        run = cast(Run, answer["run"])
        if answer.get("done"):
            return run
        self.last_run = run
        # A millisecond of slack: a timer may fire a hair early.
        if self.deadline is not None and self._remaining() <= 0.001:
            assert self.timeout is not None
            raise RunWaitTimeout(self.run_id, self.timeout, run)
        return None

    def pause(self) -> float:
        """Seconds to sleep before the next call (usually none)."""
        early = self._asked - (monotonic() - self._sent_at)
        pause = min(1.0, early) if early > 0 else 0.0
        if self.deadline is not None:
            remaining = self._remaining()
            if remaining < 1:  # less than the server can be asked to wait
                pause = remaining
            pause = min(pause, remaining)
        return max(0.0, pause)
