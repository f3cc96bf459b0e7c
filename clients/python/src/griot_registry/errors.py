"""Exceptions raised by the griot-registry clients.

Every failure is a :class:`RegistryError`. The server's error body
``{"detail": {"code": ..., "message": ...}}`` becomes its ``code`` and
``message``; the HTTP status picks the subclass:

===========================  ==========================================
status                        exception
===========================  ==========================================
400, 422                      :class:`RequestValidationError`
401, 403                      :class:`AuthenticationError`
404                           :class:`NotFoundError`
409                           :class:`ConflictError`
412                           :class:`PreconditionFailedError`
any other status              :class:`RegistryError`
no answer at all              :class:`RegistryConnectionError`
===========================  ==========================================

:class:`RunWaitTimeout` is raised by ``wait_for_run`` when its timeout
passes first; it is also a builtin :class:`TimeoutError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Dict, Optional, Type

if TYPE_CHECKING:
    from .types import Run

__all__ = [
    "RegistryError",
    "NotFoundError",
    "AuthenticationError",
    "ConflictError",
    "PreconditionFailedError",
    "RequestValidationError",
    "RegistryConnectionError",
    "RunWaitTimeout",
]


class RegistryError(Exception):
    """A request to the registry failed.

    Attributes:
        status_code: The HTTP status, or ``None`` when no answer came back.
        code: The server's machine-readable error code (``NOT_FOUND``,
            ``INVALID_TRANSITION``, ...), or ``None`` when the answer had none.
        message: What went wrong, for a person.
        method: The HTTP method of the failed request, when known.
        url: The URL of the failed request (without its query), when known.
    """

    def __init__(
        self,
        status_code: Optional[int],
        code: Optional[str],
        message: str,
        *,
        method: Optional[str] = None,
        url: Optional[str] = None,
    ) -> None:
        super().__init__(status_code, code, message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.method = method
        self.url = url

    def __str__(self) -> str:
        parts = []
        if self.status_code is not None:
            parts.append(str(self.status_code))
        if self.code:
            parts.append(self.code)
        head = " ".join(parts)
        text = f"{head}: {self.message}" if head else self.message
        if self.method and self.url and self.status_code is not None:
            text += f" ({self.method} {self.url})"
        return text

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status_code={self.status_code!r}, "
            f"code={self.code!r}, message={self.message!r})"
        )


class NotFoundError(RegistryError):
    """404: the run, validation or endpoint does not exist."""


class AuthenticationError(RegistryError):
    """401 (no, malformed, unknown or revoked API key) or 403 (the key's
    scope does not allow the operation, e.g. a read key on a write)."""


class ConflictError(RegistryError):
    """409: the change conflicts with the current state, e.g. code
    ``INVALID_TRANSITION`` when asked to move a run out of a final status."""


class PreconditionFailedError(RegistryError):
    """412 (code ``PRECONDITION_FAILED``): an update sent with
    ``if_match=<version>`` found the run at another version, because
    something changed it since it was read. Read it again and decide."""


class RequestValidationError(RegistryError):
    """400 (the body is not JSON) or 422 (a field is missing, has the wrong
    type or breaks a rule)."""


class RegistryConnectionError(RegistryError):
    """The registry could not be reached, or did not answer in time.

    ``status_code`` and ``code`` are ``None``; ``url`` names the URL that was
    tried and the message says why it failed.
    """

    def __init__(
        self,
        message: str,
        *,
        method: Optional[str] = None,
        url: Optional[str] = None,
    ) -> None:
        super().__init__(None, None, message, method=method, url=url)
        # Keep pickling/copying working: Exception rebuilds from self.args.
        self.args = (message,)


class RunWaitTimeout(RegistryError, TimeoutError):
    """``wait_for_run`` gave up: the run was not final when its timeout
    passed. Both a :class:`RegistryError` and a builtin :class:`TimeoutError`.

    ``status_code`` and ``code`` are ``None``.

    Attributes:
        run_id: The run waited for.
        timeout: The timeout that passed, in seconds.
        run: The run as the registry last showed it (still ``pending`` or
            ``running``).
    """

    def __init__(self, run_id: str, timeout: float, run: Run) -> None:
        status = run.get("status", "not final") if isinstance(run, dict) else "not final"
        message = f"run {run_id} is still {status} after waiting {timeout:g} s"
        super().__init__(None, None, message)
        # OSError, a base class through TimeoutError, took the three
        # arguments above as errno, strerror and filename; reset them, and
        # keep pickling working (Exception rebuilds from self.args).
        self.errno = None
        self.strerror = None
        self.filename = None
        self.args = (run_id, timeout, run)
        self.run_id = run_id
        self.timeout = timeout
        self.run: Run = run


_BY_STATUS: Dict[int, Type[RegistryError]] = {
    400: RequestValidationError,
    401: AuthenticationError,
    403: AuthenticationError,
    404: NotFoundError,
    409: ConflictError,
    412: PreconditionFailedError,
    422: RequestValidationError,
}


def error_class_for_status(status_code: int) -> Type[RegistryError]:
    """The exception class that an HTTP error status maps to."""
    return _BY_STATUS.get(status_code, RegistryError)
