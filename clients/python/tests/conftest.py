"""Fixtures: a live griot-registry server for the whole session.

The server is the already built binary (``GRIOT_REGISTRY_BIN``, default
``<repo>/target/debug/griot-registry``); nothing is built here. It runs on a
free loopback port with a temporary database, a bootstrap write key and a
reaper that fails lapsed runs every second.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, List, Optional, Sequence

import httpx
import pytest

from griot_registry import SyncRegistryClient

#: clients/python/tests/conftest.py -> the repository root.
REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_BINARY = REPO_ROOT / "target" / "debug" / "griot-registry"
READY_TIMEOUT = 20.0

#: Server settings for the tests: the reaper fails runs whose heartbeat
#: lapsed every second (instead of every 10 s), so heartbeat tests are quick.
SERVER_ENV = {"GRIOT_REAPER_INTERVAL_SECONDS": "1"}

#: Environment variables that would change what a test sees.
CLIENT_ENV = ("GRIOT_API_KEY", "REGISTRY_URL", "GRIOT_RUN_ID")


def free_port() -> int:
    """A loopback port that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def registry_binary() -> Path:
    configured = os.environ.get("GRIOT_REGISTRY_BIN")
    binary = Path(configured) if configured else DEFAULT_BINARY
    if not binary.is_file():
        pytest.fail(
            f"griot-registry binary not found at {binary}. These tests do not build "
            f"it: run `cargo build` first in {REPO_ROOT} (or set GRIOT_REGISTRY_BIN "
            "to a built binary).",
            pytrace=False,
        )
    return binary


@dataclass
class Registry:
    """A running server and how to reach it."""

    url: str
    api_key: str
    db_path: Path
    binary: Path
    process: subprocess.Popen  # type: ignore[type-arg]
    log_path: Path
    _key_names: List[str] = field(default_factory=list)

    def client(self, **kwargs: object) -> SyncRegistryClient:
        kwargs.setdefault("api_key", self.api_key)
        return SyncRegistryClient(self.url, **kwargs)  # type: ignore[arg-type]

    def cli(self, *args: str) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
        """Run ``griot-registry <args> --db <db>`` and fail the test on error."""
        result = subprocess.run(
            [str(self.binary), *args, "--db", str(self.db_path)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=30,
            env=server_env(),
        )
        if result.returncode != 0:
            pytest.fail(
                f"`griot-registry {' '.join(args)}` exited {result.returncode}:\n"
                f"{result.stderr}{result.stdout}",
                pytrace=False,
            )
        return result

    def create_key(self, name: str, scope: str = "write") -> str:
        """Create an API key with the CLI; return its secret (printed on stdout)."""
        out = self.cli("keys", "create", "--name", name, "--scope", scope).stdout
        secret = out.strip().splitlines()[-1].strip()
        assert secret.startswith("grk_"), out
        return str(secret)

    def revoke_key(self, name: str) -> None:
        self.cli("keys", "revoke", name)

    def server_log(self) -> str:
        return self.log_path.read_text(errors="replace")


def server_env(extra: Optional[dict] = None) -> dict:  # type: ignore[type-arg]
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRIOT_")}
    env["NO_COLOR"] = "1"
    env.update(extra or {})
    return env


def _wait_ready(process: subprocess.Popen, url: str, deadline: float) -> bool:  # type: ignore[type-arg]
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            if httpx.get(f"{url}/health/ready", timeout=1.0).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    return False


def _stop(process: subprocess.Popen) -> None:  # type: ignore[type-arg]
    if process.poll() is None:
        process.terminate()  # SIGTERM: graceful shutdown
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@dataclass
class _Attempt:
    process: Optional[subprocess.Popen]  # type: ignore[type-arg]
    url: str
    log_path: Path
    failure: str = ""
    worth_retrying: bool = False


def _start(
    binary: Path, db_path: Path, api_key: str, extra_args: Sequence[str], workdir: Path, attempt: int
) -> _Attempt:
    """One try at starting the server and waiting until it is ready."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = workdir / f"server-{attempt}.log"
    with open(log_path, "wb") as log:
        try:
            process = subprocess.Popen(
                [
                    str(binary), "serve",
                    "--db", str(db_path),
                    "--bind", f"127.0.0.1:{port}",
                    "--shutdown-grace-seconds", "5",
                    *extra_args,
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,  # a file, not a pipe: a full pipe would block the server
                stderr=subprocess.STDOUT,
                env=server_env({"GRIOT_BOOTSTRAP_API_KEY": api_key, **SERVER_ENV}),
            )
        except OSError as exc:  # e.g. the binary is being replaced by a rebuild right now
            return _Attempt(None, url, log_path, f"cannot start {binary}: {exc}", True)
    if _wait_ready(process, url, time.monotonic() + READY_TIMEOUT):
        return _Attempt(process, url, log_path)
    exited = process.poll() is not None
    _stop(process)
    output = log_path.read_text(errors="replace")
    if exited:
        why = f"the server exited with code {process.returncode} before {url}/health/ready answered"
    else:
        why = f"{url}/health/ready did not answer 200 within {READY_TIMEOUT:.0f}s"
    # Only a port taken in the meantime is worth another try.
    retry = exited and "in use" in output.lower()
    return _Attempt(None, url, log_path, f"{why}; server output:\n{output}", retry)


@contextmanager
def run_registry(
    workdir: Path, extra_args: Sequence[str] = (), api_key: Optional[str] = None
) -> Iterator[Registry]:
    """Start the server on a free port with the database in ``workdir`` (new,
    or left by an earlier server there, whose ``api_key`` is then the
    bootstrap key again); stop it after."""
    binary = registry_binary()
    workdir.mkdir(parents=True, exist_ok=True)
    api_key = api_key or "grk_" + secrets.token_hex(32)
    db_path = workdir / "registry.db"
    failures: List[str] = []
    for number in range(3):
        attempt = _start(binary, db_path, api_key, extra_args, workdir, number)
        if attempt.process is not None:
            break
        failures.append(f"attempt {number + 1}: {attempt.failure}")
        if not attempt.worth_retrying:
            break
        time.sleep(0.5)
    process = attempt.process
    if process is None:
        pytest.fail(
            "could not start griot-registry for the tests:\n" + "\n".join(failures),
            pytrace=False,
        )
    registry = Registry(attempt.url, api_key, db_path, binary, process, attempt.log_path)
    try:
        yield registry
    finally:
        _stop(process)


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """The server every live test talks to."""
    with run_registry(tmp_path_factory.mktemp("registry")) as server:
        yield server


@pytest.fixture(scope="session")
def read_key(registry: Registry) -> str:
    """A key with the read scope, created with `griot-registry keys create`."""
    return registry.create_key("reader", scope="read")


@pytest.fixture(autouse=True)
def _clean_client_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's GRIOT_API_KEY and friends."""
    for name in CLIENT_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def contract_id() -> str:
    """A contract id no other test uses, so lists only hold this test's data."""
    return f"contract-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def client(registry: Registry) -> Iterator[SyncRegistryClient]:
    """A sync client with the bootstrap (write) key."""
    with registry.client() as c:
        yield c


@pytest.fixture
def closed_port_url() -> str:
    """A loopback URL where nothing listens."""
    return f"http://127.0.0.1:{free_port()}"
