"""Python client for griot-registry, the run registry for data pipelines.

* :class:`SyncRegistryClient`: blocking client.
* :class:`RegistryClient`: the same methods as coroutines (asyncio or trio).
* :func:`run_context`: track a block of code as a run (``with`` or
  ``async with``).
* :class:`RegistryError` and its subclasses: every failure.

Methods return the server's JSON as plain dicts; :mod:`griot_registry.types`
describes their keys.
"""

from ._core import DateLike
from ._version import __version__
from .async_client import RegistryClient
from .client import SyncRegistryClient
from .errors import (
    AuthenticationError,
    ConflictError,
    NotFoundError,
    PreconditionFailedError,
    RegistryConnectionError,
    RegistryError,
    RequestValidationError,
    RunWaitTimeout,
)
from .run_context import AsyncRunContext, SyncRunContext, async_run_context, run_context

__all__ = [
    "__version__",
    "SyncRegistryClient",
    "RegistryClient",
    "run_context",
    "async_run_context",
    "SyncRunContext",
    "AsyncRunContext",
    "RegistryError",
    "NotFoundError",
    "AuthenticationError",
    "ConflictError",
    "PreconditionFailedError",
    "RequestValidationError",
    "RegistryConnectionError",
    "RunWaitTimeout",
    "DateLike",
]
