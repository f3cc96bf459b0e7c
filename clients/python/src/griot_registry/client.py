# Generated from async_client.py by clients/python/scripts/gen_sync.py:
# edit async_client.py and run the script again, not this file.
"""The blocking client, :class:`SyncRegistryClient`."""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any, Iterator, Mapping, Optional, Sequence, Type, cast

import httpx

from . import _core
from ._core import DateLike, TimeoutLike
from .types import (
    Health,
    Run,
    RunEvent,
    RunEventPage,
    RunListItem,
    RunPage,
    Validation,
    ValidationPage,
    ValidationStats,
)

__all__ = ["SyncRegistryClient"]


class SyncRegistryClient:
    """A blocking client for the griot-registry HTTP API.

    Use it as a context manager, or call :meth:`close` when done::

        with SyncRegistryClient("http://localhost:8000", api_key="grk_...") as client:
            run = client.create_run(contract_id="orders", status="running")

    Args:
        base_url: The registry's URL, with or without a trailing slash and
            with or without the ``/api/v1`` suffix.
        api_key: A key for the ``X-API-Key`` header. When ``None``, the
            ``GRIOT_API_KEY`` environment variable is used if set. Writes need
            a key with the ``write`` scope; reads need none unless the server
            runs with ``--require-auth-for-reads``.
        timeout: Seconds to wait for the server (a number or an
            ``httpx.Timeout``).
        max_retries: How many times a GET, or a :meth:`create_run` (which
            carries an ``Idempotency-Key``), is tried again after a
            connection failure or a 502/503/504 answer. Other writes are
            never retried.
        retry_backoff: The first wait between retries, in seconds; each next
            wait doubles (at most 8 s).
        headers: Extra headers sent with every request.
        transport: An ``httpx`` transport to send requests through (for tests
            or custom networking).
        verify: TLS certificate checking for ``https://`` registries: ``True``
            (the default CA bundle), ``False``, or an ``ssl.SSLContext`` (for a
            private CA: ``ssl.create_default_context(cafile=...)``).
    """

    def __init__(
        self,
        base_url: str,
        api_key: Optional[str] = None,
        timeout: TimeoutLike = _core.DEFAULT_TIMEOUT,
        *,
        max_retries: int = _core.DEFAULT_MAX_RETRIES,
        retry_backoff: float = _core.DEFAULT_RETRY_BACKOFF,
        headers: Optional[Mapping[str, str]] = None,
        transport: Optional[httpx.BaseTransport] = None,
        verify: _core.VerifyLike = True,
    ) -> None:
        self.base_url = _core.normalize_base_url(base_url)
        _core.check_retry_settings(max_retries, retry_backoff)
        self.max_retries = max_retries
        self.retry_backoff = retry_backoff
        api_key = _core.resolve_api_key(api_key)
        self._has_api_key = api_key is not None
        self._http = httpx.Client(
            timeout=timeout,
            headers=_core.default_headers(api_key, headers),
            transport=transport,
            verify=_core.resolve_verify(verify),
        )

    # -- lifecycle ---------------------------------------------------------

    def close(self) -> None:
        """Close the connections. The client cannot be used afterwards."""
        self._http.close()

    @property
    def is_closed(self) -> bool:
        return self._http.is_closed

    def __enter__(self) -> SyncRegistryClient:
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        key = "set" if self._has_api_key else "none"
        return f"{type(self).__name__}(base_url={self.base_url!r}, api_key={key})"

    # -- transport ---------------------------------------------------------

    def _send(self, call: _core.Call) -> Any:
        url = self.base_url + call.path
        attempts = 1 + (self.max_retries if call.retryable else 0)
        content = call.encoded_body()
        headers = call.request_headers(content is not None)
        timeout = call.timeout(self._http.timeout)
        for attempt in range(attempts):
            last = attempt + 1 == attempts
            try:
                response = self._http.request(
                    call.method,
                    url,
                    params=call.params,
                    content=content,
                    headers=headers,
                    timeout=timeout,
                )
            except _core.RETRY_EXCEPTIONS as exc:
                if last:
                    raise _core.connection_error(call, url, exc, attempt + 1) from exc
                time.sleep(_core.retry_delay(attempt, self.retry_backoff))
                continue
            except httpx.TransportError as exc:
                raise _core.connection_error(call, url, exc, attempt + 1) from exc
            if response.status_code in _core.RETRY_STATUSES and not last:
                time.sleep(_core.retry_delay(attempt, self.retry_backoff, response))
                continue
            return _core.decode_response(response)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- health ------------------------------------------------------------

    def health(self) -> Health:
        """``GET /health``: ``{"status": "ok", "version": ...}``."""
        return cast(Health, self._send(_core.health_call()))

    # -- runs --------------------------------------------------------------

    def create_run(
        self,
        contract_id: str,
        pipeline_name: Optional[str] = None,
        pipeline_id: Optional[str] = None,
        status: Optional[str] = None,
        metadata: Optional[Mapping[str, Any]] = None,
        started_at: Optional[DateLike] = None,
        completed_at: Optional[DateLike] = None,
        heartbeat_timeout_seconds: Optional[int] = None,
        idempotency_key: Optional[str] = None,
    ) -> Run:
        """Record the start of a pipeline execution (``POST /api/v1/runs``).

        ``status`` defaults to ``pending`` on the server and ``started_at``
        to now; ``completed_at`` is only for backfilling a final run. With
        ``heartbeat_timeout_seconds`` (1 to 604800) the server fails the run
        when it stays pending or running that long without a
        :meth:`heartbeat` or an update. Needs a write key. Returns the new
        run; ``created_by`` is the key's name.

        The request carries an ``Idempotency-Key``: ``idempotency_key`` if
        given (1 to 255 printable ASCII characters), else a new UUID. The
        server creates at most one run per key (per API key, for 24 hours),
        so this create is retried like a GET after connection failures and
        502/503/504 answers without risk of a second run. Sending the same
        key again later returns the run it created; the same key with other
        fields raises :class:`~griot_registry.RequestValidationError`.
        """
        return cast(
            Run,
            self._send(
                _core.create_run_call(
                    contract_id,
                    pipeline_name,
                    pipeline_id,
                    status,
                    metadata,
                    started_at,
                    completed_at,
                    heartbeat_timeout_seconds,
                    idempotency_key,
                )
            ),
        )

    def get_run(self, run_id: str) -> Run:
        """The run with its validations (``GET /api/v1/runs/{run_id}``).

        Raises :class:`~griot_registry.NotFoundError` for an unknown id.
        """
        return cast(Run, self._send(_core.get_run_call(run_id)))

    def update_run(
        self,
        run_id: str,
        status: Optional[str] = None,
        metadata: Optional[Mapping[str, Any]] = None,
        pipeline_name: Optional[str] = None,
        pipeline_id: Optional[str] = None,
        heartbeat_timeout_seconds: Optional[int] = None,
        if_match: Optional[int] = None,
    ) -> Run:
        """Change a run (``PATCH /api/v1/runs/{run_id}``). Needs a write key.

        ``metadata`` is merged into the stored metadata (JSON merge patch):
        given keys are set, keys given as ``None`` are removed. Moving a run
        out of a final status raises :class:`~griot_registry.ConflictError`
        (code ``INVALID_TRANSITION``). ``heartbeat_timeout_seconds`` sets a
        new heartbeat timeout; ``0`` removes it. Any update of a live run
        also counts as a heartbeat.

        With ``if_match`` (a run's ``version``, as read) the change applies
        only if the run is still at that version; otherwise
        :class:`~griot_registry.PreconditionFailedError` (412) is raised and
        nothing changes. Never retried.
        """
        return cast(
            Run,
            self._send(
                _core.update_run_call(
                    run_id,
                    status,
                    metadata,
                    pipeline_name,
                    pipeline_id,
                    heartbeat_timeout_seconds,
                    if_match,
                )
            ),
        )

    def heartbeat(self, run_id: str) -> Run:
        """Tell the registry a pending or running run is alive
        (``POST /api/v1/runs/{run_id}/heartbeat``), pushing back its
        ``heartbeat_deadline``. Needs a write key. Returns the run.

        A run in a final status raises :class:`~griot_registry.ConflictError`
        (code ``INVALID_TRANSITION``). Never retried: a lost heartbeat is
        simply sent again at the next interval.
        """
        return cast(Run, self._send(_core.heartbeat_call(run_id)))

    def list_run_events(self, run_id: str, limit: int = 50, offset: int = 0) -> RunEventPage:
        """One page of a run's history, oldest first
        (``GET /api/v1/runs/{run_id}/events``): its creation, every status
        change and update with the key that made it (``actor``), and a
        heartbeat expiry by ``system``. Returns ``{"items", "total",
        "limit", "offset"}``.
        """
        return cast(
            RunEventPage, self._send(_core.list_run_events_call(run_id, limit, offset))
        )

    def iter_run_events(
        self, run_id: str, page_size: int = _core.DEFAULT_PAGE_SIZE
    ) -> Iterator[RunEvent]:
        """Every event of a run, oldest first, fetched ``page_size`` at a time."""
        pager = _core.Pager(page_size)
        while not pager.done:
            page = self.list_run_events(run_id, limit=pager.page_size, offset=pager.offset)
            for item in pager.take(page):
                yield item

    def wait_for_run(
        self,
        run_id: str,
        timeout: Optional[float] = None,
        poll_timeout: float = _core.DEFAULT_POLL_TIMEOUT,
    ) -> Run:
        """Block until the run is in a final status, and return it.

        Calls ``GET /api/v1/runs/{run_id}/wait`` in a loop, each call held
        by the server for up to ``poll_timeout`` seconds (1 to 60) and
        answered as soon as the run is final, so the run comes back at once
        when it finishes. With ``timeout=None`` it waits for as long as it
        takes; with ``timeout`` seconds it raises
        :class:`~griot_registry.RunWaitTimeout` (a ``TimeoutError``) when
        they pass first; the exception's ``run`` is the run as last seen.
        No call to the server asks it to wait longer than what is left of
        ``timeout``. Calls that fail to connect are retried like any GET.
        """
        waiter = _core.RunWaiter(run_id, timeout, poll_timeout)
        while True:
            answer = self._send(waiter.next_call())
            run = waiter.finished(answer)
            if run is not None:
                return run
            pause = waiter.pause()
            if pause > 0:
                time.sleep(pause)

    def list_runs(
        self,
        contract_id: Optional[str] = None,
        pipeline_name: Optional[str] = None,
        status: Optional[str] = None,
        start_date: Optional[DateLike] = None,
        end_date: Optional[DateLike] = None,
        limit: int = 50,
        offset: int = 0,
        stale: Optional[bool] = None,
        cursor: Optional[str] = None,
    ) -> RunPage:
        """One page of runs, newest ``started_at`` first (``GET /api/v1/runs``).

        ``start_date`` is inclusive and ``end_date`` exclusive; each may be a
        ``datetime`` (naive ones are UTC), a ``date`` or a string.
        ``stale=True`` keeps only pending or running runs whose heartbeat is
        overdue right now (the server fails them shortly). Returns
        ``{"items": [...], "total", "limit", "offset", "next_cursor"}``;
        pass ``next_cursor`` back as ``cursor`` for the next page.
        """
        return cast(
            RunPage,
            self._send(
                _core.list_runs_call(
                    contract_id,
                    pipeline_name,
                    status,
                    start_date,
                    end_date,
                    limit,
                    offset,
                    stale,
                    cursor,
                )
            ),
        )

    def iter_runs(
        self,
        contract_id: Optional[str] = None,
        pipeline_name: Optional[str] = None,
        status: Optional[str] = None,
        start_date: Optional[DateLike] = None,
        end_date: Optional[DateLike] = None,
        page_size: int = _core.DEFAULT_PAGE_SIZE,
        stale: Optional[bool] = None,
    ) -> Iterator[RunListItem]:
        """Every run matching the filters, fetched ``page_size`` at a time."""
        pager = _core.Pager(page_size)
        while not pager.done:
            page = self.list_runs(
                contract_id,
                pipeline_name,
                status,
                start_date,
                end_date,
                limit=pager.page_size,
                offset=pager.next_offset,
                stale=stale,
                cursor=pager.cursor,
            )
            for item in pager.take(page):
                yield item

    # -- validations -------------------------------------------------------

    def record_validation(
        self,
        contract_id: str,
        status: str,
        run_id: Optional[str] = None,
        errors: Optional[Sequence[Mapping[str, Any]]] = None,
        warnings: Optional[Sequence[Mapping[str, Any]]] = None,
        metrics: Optional[Mapping[str, Any]] = None,
        metadata: Optional[Mapping[str, Any]] = None,
        recorded_at: Optional[DateLike] = None,
    ) -> Validation:
        """Record a validation result (``POST /api/v1/validations``).

        ``status`` is ``passed``, ``failed``, ``warning`` or ``skipped``;
        ``errors`` items are ``{"code", "message", "path"?, "row_count"?}``
        and ``warnings`` items ``{"code", "message"}``. A ``run_id`` must
        name an existing run of the same contract. Needs a write key.
        """
        return cast(
            Validation,
            self._send(
                _core.record_validation_call(
                    contract_id,
                    status,
                    run_id,
                    errors,
                    warnings,
                    metrics,
                    metadata,
                    recorded_at,
                )
            ),
        )

    def get_validation(self, validation_id: str) -> Validation:
        """One validation (``GET /api/v1/validations/{validation_id}``)."""
        return cast(Validation, self._send(_core.get_validation_call(validation_id)))

    def list_validations(
        self,
        contract_id: Optional[str] = None,
        run_id: Optional[str] = None,
        status: Optional[str] = None,
        start_date: Optional[DateLike] = None,
        end_date: Optional[DateLike] = None,
        limit: int = 50,
        offset: int = 0,
        cursor: Optional[str] = None,
    ) -> ValidationPage:
        """One page of validations, newest first (``GET /api/v1/validations``).

        The dates bound ``recorded_at`` like :meth:`list_runs`' bound
        ``started_at``; ``cursor`` works as there.
        """
        return cast(
            ValidationPage,
            self._send(
                _core.list_validations_call(
                    contract_id, run_id, status, start_date, end_date, limit, offset, cursor
                )
            ),
        )

    def iter_validations(
        self,
        contract_id: Optional[str] = None,
        run_id: Optional[str] = None,
        status: Optional[str] = None,
        start_date: Optional[DateLike] = None,
        end_date: Optional[DateLike] = None,
        page_size: int = _core.DEFAULT_PAGE_SIZE,
    ) -> Iterator[Validation]:
        """Every validation matching the filters, ``page_size`` at a time."""
        pager = _core.Pager(page_size)
        while not pager.done:
            page = self.list_validations(
                contract_id,
                run_id,
                status,
                start_date,
                end_date,
                limit=pager.page_size,
                offset=pager.next_offset,
                cursor=pager.cursor,
            )
            for item in pager.take(page):
                yield item

    def get_validation_stats(
        self, contract_id: str, days: int = 30, granularity: str = "day"
    ) -> ValidationStats:
        """A contract's validation trends over the last ``days`` days
        (``GET /api/v1/validations/stats/{contract_id}``), bucketed by
        ``hour``, ``day`` or ``week``."""
        return cast(
            ValidationStats,
            self._send(_core.validation_stats_call(contract_id, days, granularity)),
        )
