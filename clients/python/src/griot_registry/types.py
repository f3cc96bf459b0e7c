"""Types of the JSON the registry answers with.

The clients return plain ``dict`` objects, exactly as the server sent them;
these ``TypedDict`` classes only describe their keys for type checkers and
editors. They follow the server's OpenAPI spec (``openapi/openapi.json``).
Timestamps are RFC 3339 strings in UTC, such as
``"2024-01-15T10:00:00.000000Z"``.
"""

# No ``from __future__ import annotations`` here: TypedDict bodies are
# evaluated on Python 3.9 too, so they use the typing module's generics.
from typing import Any, Dict, List, Literal, Optional, TypedDict

__all__ = [
    "RunStatus",
    "ValidationStatus",
    "Granularity",
    "Health",
    "ValidationRef",
    "StatusCounts",
    "RunFields",
    "Run",
    "RunListItem",
    "RunPage",
    "RunEventType",
    "RunEvent",
    "RunEventPage",
    "RunWait",
    "Validation",
    "ValidationPage",
    "StatsBucket",
    "CommonError",
    "ValidationStats",
]

RunStatus = Literal["pending", "running", "completed", "failed", "cancelled"]
"""Where a run is in its life; ``completed``, ``failed`` and ``cancelled``
are final."""

ValidationStatus = Literal["passed", "failed", "warning", "skipped"]
"""The outcome of a validation."""

Granularity = Literal["hour", "day", "week"]
"""The width of a stats bucket."""

RunEventType = Literal["created", "status_changed", "updated", "heartbeat_expired"]
"""What happened to a run."""


class Health(TypedDict):
    status: str
    version: str


class ValidationRef(TypedDict):
    """A validation as its run lists it."""

    id: str
    status: ValidationStatus
    recorded_at: str


class StatusCounts(TypedDict):
    """How many validations have each status."""

    passed: int
    failed: int
    warning: int
    skipped: int
    total: int


class RunFields(TypedDict):
    """The fields every view of a run carries."""

    id: str
    contract_id: str
    pipeline_name: Optional[str]
    pipeline_id: Optional[str]
    status: RunStatus
    metadata: Dict[str, Any]
    started_at: str
    completed_at: Optional[str]
    created_by: str
    updated_at: str
    #: Grows with every change (not with heartbeats); the ``ETag``. Pass it
    #: as ``update_run(..., if_match=version)``.
    version: int
    #: Seconds of silence after which the server fails a pending or running
    #: run; ``None`` for no timeout.
    heartbeat_timeout_seconds: Optional[int]
    last_heartbeat_at: Optional[str]
    #: When the run will be failed if nothing is heard from it; ``None`` for
    #: final runs and runs without a timeout.
    heartbeat_deadline: Optional[str]


class Run(RunFields):
    """A run, with every validation recorded during it (oldest first)."""

    validations: List[ValidationRef]


class RunListItem(RunFields):
    """A run as lists show it: counts of its validations per status
    instead of the validations themselves."""

    validation_summary: StatusCounts


class RunPage(TypedDict):
    """One page of runs, newest ``started_at`` first."""

    items: List[RunListItem]
    total: int
    limit: int
    offset: int
    #: True when the server's byte budget cut the page short; ``limit`` is
    #: then the number of items, and the next page starts at
    #: ``offset + limit``.
    truncated: bool
    #: Pass as ``cursor`` for the next page; ``None`` on the last page.
    next_cursor: Optional[str]


class RunEvent(TypedDict):
    """One entry of a run's history."""

    id: int
    run_id: str
    type: RunEventType
    from_status: Optional[RunStatus]
    to_status: Optional[RunStatus]
    #: What the change asked for: the fields of the update, as sent.
    changes: Dict[str, Any]
    #: The name of the API key that made the change, or ``system`` (for
    #: ``heartbeat_expired``).
    actor: str
    occurred_at: str


class RunEventPage(TypedDict):
    """One page of a run's events, oldest first."""

    items: List[RunEvent]
    total: int
    limit: int
    offset: int
    #: True when the server's byte budget cut the page short; ``limit`` is
    #: then the number of items, and the next page starts at
    #: ``offset + limit``.
    truncated: bool


class RunWait(TypedDict):
    """One answer of ``GET /api/v1/runs/{run_id}/wait``."""

    done: bool
    run: Run


class Validation(TypedDict):
    """A recorded validation."""

    id: str
    contract_id: str
    run_id: Optional[str]
    status: ValidationStatus
    errors: List[Dict[str, Any]]
    warnings: List[Dict[str, Any]]
    metrics: Dict[str, Any]
    metadata: Dict[str, Any]
    recorded_at: str
    recorded_by: str


class ValidationPage(TypedDict):
    """One page of validations, newest first."""

    items: List[Validation]
    total: int
    limit: int
    offset: int
    #: True when the server's byte budget cut the page short; ``limit`` is
    #: then the number of items, and the next page starts at
    #: ``offset + limit``.
    truncated: bool
    #: Pass as ``cursor`` for the next page; ``None`` on the last page.
    next_cursor: Optional[str]


class StatsBucket(TypedDict):
    start: str
    counts: StatusCounts
    pass_rate: Optional[float]


class CommonError(TypedDict):
    code: str
    count: int
    sample_message: str


class ValidationStats(TypedDict):
    """A contract's validation trends over a window ending now."""

    contract_id: str
    days: int
    granularity: Granularity
    window_start: str
    window_end: str
    totals: StatusCounts
    pass_rate: Optional[float]
    avg_duration_ms: Optional[float]
    buckets: List[StatsBucket]
    common_errors: List[CommonError]
