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
    "Run",
    "RunListItem",
    "RunPage",
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


class Run(TypedDict):
    """A run, with every validation recorded during it (oldest first)."""

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
    validations: List[ValidationRef]


class RunListItem(TypedDict):
    """A run as lists show it: counts of its validations per status
    instead of the validations themselves."""

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
    validation_summary: StatusCounts


class RunPage(TypedDict):
    """One page of runs, newest ``started_at`` first."""

    items: List[RunListItem]
    total: int
    limit: int
    offset: int


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
