"""What every integration shares: settings from the environment, a reporter
that cannot hurt the pipeline it reports on, stable idempotency keys and a
heartbeat thread."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Mapping, Optional, TypeVar

import httpx

from ..client import SyncRegistryClient
from ..errors import RegistryConnectionError
from ..types import Run, Validation

__all__ = ["Settings", "Reporter", "Heartbeater", "stable_key"]

logger = logging.getLogger("griot_registry.integrations")

DEFAULT_URL = "http://127.0.0.1:8000"
#: Seconds a single request to the registry may take, all told. Pipelines must
#: never wait long on their own bookkeeping.
DEFAULT_TIMEOUT_SECONDS = 5.0
DEFAULT_CONNECT_TIMEOUT_SECONDS = 2.0
#: After the registry could not be reached, calls are skipped (no request, no
#: wait) for this long, so a pipeline with a thousand steps does not pay the
#: connect timeout a thousand times during an outage.
UNREACHABLE_BACKOFF_SECONDS = 30.0
DEFAULT_HEARTBEAT_SECONDS = 60.0

T = TypeVar("T")


def _env(name: str) -> Optional[str]:
    value = os.environ.get(name, "").strip()
    return value or None


def _env_float(name: str, default: float) -> float:
    raw = _env(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        logger.warning("griot-registry: %s=%r is not a number; using %s", name, raw, default)
        return default
    if value <= 0:
        logger.warning("griot-registry: %s must be above 0; using %s", name, default)
        return default
    return value


@dataclass(frozen=True)
class Settings:
    """Where and how integrations report, read from the environment.

    * ``GRIOT_URL`` (else ``REGISTRY_URL``, the name the spec's snippets use;
      else ``http://127.0.0.1:8000``): the registry.
    * ``GRIOT_API_KEY``: a key with the ``write`` scope.
    * ``GRIOT_CONTRACT_ID``: the contract when the pipeline names none.
    * ``GRIOT_TIMEOUT_SECONDS`` (default 5): the most one request may take.
    * ``GRIOT_HEARTBEAT_SECONDS`` (default 60): how often a live run says it
      is alive; the run is given three times that before the registry
      fails it as stale.
    """

    url: str = DEFAULT_URL
    api_key: Optional[str] = None
    contract_id: Optional[str] = None
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    heartbeat_seconds: float = DEFAULT_HEARTBEAT_SECONDS

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            url=_env("GRIOT_URL") or _env("REGISTRY_URL") or DEFAULT_URL,
            api_key=_env("GRIOT_API_KEY"),
            contract_id=_env("GRIOT_CONTRACT_ID"),
            timeout_seconds=_env_float("GRIOT_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECONDS),
            heartbeat_seconds=_env_float("GRIOT_HEARTBEAT_SECONDS", DEFAULT_HEARTBEAT_SECONDS),
        )

    @property
    def heartbeat_timeout_seconds(self) -> int:
        """What to ask the registry for on create: three missed heartbeats."""
        return max(1, int(self.heartbeat_seconds * 3))


def stable_key(namespace: str, *parts: object) -> str:
    """An ``Idempotency-Key`` that is the same every time for the same
    parts, so a retried or repeated report of one execution (a scheduler
    restart, a second ``griot-dbt record``) never records it twice."""
    digest = hashlib.sha256("\x1f".join(str(part) for part in parts).encode()).hexdigest()
    return f"griot-{namespace}-{digest[:40]}"


class Reporter:
    """Reports to the registry and never raises.

    Every method returns the server's answer, or ``None`` when the call
    failed: the failure is logged as a warning (once per outage when the
    registry cannot be reached) and the caller goes on. Requests use short
    timeouts and at most one retry.
    """

    def __init__(
        self,
        settings: Optional[Settings] = None,
        *,
        transport: Optional[httpx.BaseTransport] = None,
    ) -> None:
        self.settings = settings or Settings.from_env()
        self._transport = transport
        self._client: Optional[SyncRegistryClient] = None
        self._lock = threading.Lock()
        self._skip_until = 0.0

    def _http(self) -> SyncRegistryClient:
        if self._client is None:
            timeout = httpx.Timeout(
                self.settings.timeout_seconds,
                connect=min(DEFAULT_CONNECT_TIMEOUT_SECONDS, self.settings.timeout_seconds),
            )
            self._client = SyncRegistryClient(
                self.settings.url,
                api_key=self.settings.api_key,
                timeout=timeout,
                max_retries=1,
                retry_backoff=0.2,
                transport=self._transport,
            )
        return self._client

    def _call(self, what: str, call: Callable[[SyncRegistryClient], T]) -> Optional[T]:
        with self._lock:
            if time.monotonic() < self._skip_until:
                return None
        try:
            return call(self._http())
        except RegistryConnectionError as error:
            with self._lock:
                first = self._skip_until == 0.0 or time.monotonic() >= self._skip_until
                self._skip_until = time.monotonic() + UNREACHABLE_BACKOFF_SECONDS
            if first:
                logger.warning(
                    "griot-registry: could not %s (%s); the pipeline goes on without "
                    "reporting for the next %d s",
                    what,
                    error,
                    UNREACHABLE_BACKOFF_SECONDS,
                )
            return None
        except Exception as error:  # never let bookkeeping fail the pipeline
            logger.warning("griot-registry: could not %s: %s", what, error)
            return None

    def create_run(self, **fields: Any) -> Optional[Run]:
        return self._call("create a run", lambda c: c.create_run(**fields))

    def update_run(self, run_id: str, **fields: Any) -> Optional[Run]:
        return self._call(f"update run {run_id}", lambda c: c.update_run(run_id, **fields))

    def get_run(self, run_id: str) -> Optional[Run]:
        return self._call(f"read run {run_id}", lambda c: c.get_run(run_id))

    def heartbeat(self, run_id: str) -> Optional[Run]:
        return self._call(f"send a heartbeat for run {run_id}", lambda c: c.heartbeat(run_id))

    def record_validation(self, **fields: Any) -> Optional[Validation]:
        return self._call("record a validation", lambda c: c.record_validation(**fields))

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> Reporter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Heartbeater:
    """Sends a heartbeat for a run every ``interval`` seconds from a daemon
    thread until :meth:`stop`, so a run whose process died goes stale in the
    registry instead of staying ``running`` forever."""

    def __init__(self, reporter: Reporter, run_id: str, interval: float) -> None:
        self._reporter = reporter
        self._run_id = run_id
        self._interval = interval
        self._stopped = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, name=f"griot-heartbeat-{run_id}", daemon=True
        )

    def start(self) -> Heartbeater:
        self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stopped.wait(self._interval):
            self._reporter.heartbeat(self._run_id)

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=self._reporter.settings.timeout_seconds + 1)

    def __enter__(self) -> Heartbeater:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def compact(mapping: Mapping[str, Any]) -> Dict[str, Any]:
    """The mapping without its ``None`` values."""
    return {key: value for key, value in mapping.items() if value is not None}
