"""Webhooks against the real binary, every message checked by the
``standardwebhooks`` package from PyPI (the Standard Webhooks reference
implementation), not by our own code: signatures, retries that keep their
webhook-id, the CLI's JSON, private-address refusals, and delivery across a
SIGKILL of the server."""

from __future__ import annotations

import json
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import httpx
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from conftest import Registry, free_port, run_registry

#: The server may send to this machine, and gives up an attempt after 1 s.
SERVE_ARGS = ("--allow-private-webhook-targets", "--webhook-timeout-seconds", "1")


class Receiver:
    """An HTTP endpoint on a loopback port that records every POST and
    answers from a script of (status, delay) pairs, then 200."""

    def __init__(self, port: Optional[int] = None) -> None:
        self.port = port or free_port()
        self.got: List[Tuple[Dict[str, str], str]] = []
        self.script: List[Tuple[int, float]] = []
        self.lock = threading.Lock()
        self.server: Optional[ThreadingHTTPServer] = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> "Receiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
                with receiver.lock:
                    receiver.got.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    status, delay = receiver.script.pop(0) if receiver.script else (200, 0.0)
                time.sleep(delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:  # the sender gave up first
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def wait_for(self, n: int, timeout: float = 30.0) -> List[Tuple[Dict[str, str], str]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.got) >= n:
                    return list(self.got)
            time.sleep(0.05)
        pytest.fail(f"expected {n} webhook messages, got {len(self.got)}: {self.got}", pytrace=False)


@contextmanager
def receiving(port: Optional[int] = None) -> Iterator[Receiver]:
    receiver = Receiver(port).start()
    try:
        yield receiver
    finally:
        receiver.stop()


def verified(secret: str, message: Tuple[Dict[str, str], str]) -> Any:
    """The payload, if the reference implementation accepts the signature."""
    headers, body = message
    return Webhook(secret).verify(body, headers)


def subscribe(registry: Registry, admin: str, url: str, events: List[str], **extra: Any) -> Dict[str, Any]:
    response = httpx.post(
        f"{registry.url}/api/v1/webhooks",
        headers={"X-API-Key": admin},
        json={"url": url, "events": events, **extra},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    body: Dict[str, Any] = response.json()
    return body


@pytest.fixture(scope="module")
def hooks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuple[Registry, str]]:
    """A server that may send to loopback receivers, and an admin key."""
    with run_registry(tmp_path_factory.mktemp("webhooks"), SERVE_ARGS) as server:
        yield server, server.create_key("ops", "admin")


def test_failed_runs_and_validations_arrive_signed(hooks: Tuple[Registry, str], contract_id: str) -> None:
    registry, admin = hooks
    with receiving() as receiver:
        hook = subscribe(registry, admin, receiver.url, ["run.failed", "validation.failed"],
                         contract_id=contract_id)
        client = registry.client()
        run = client.create_run(contract_id=contract_id, pipeline_name="nightly")
        client.update_run(run["id"], status="failed")
        as_failed = httpx.get(f"{registry.url}/api/v1/runs/{run['id']}", timeout=10).json()
        validation = client.record_validation(contract_id=contract_id, run_id=run["id"], status="failed",
                                              errors=[{"code": "nulls", "message": "email has nulls"}])
        messages = receiver.wait_for(2)
        first, second = (verified(hook["secret"], m) for m in messages)
        assert first["type"] == "run.failed"
        assert first["data"]["id"] == run["id"]
        assert first["data"]["status"] == "failed"
        # The run as the API returned it when it failed.
        assert first["data"] == as_failed
        assert second["type"] == "validation.failed"
        assert second["data"]["id"] == validation["id"]
        # Another key's signature is refused by the same library.
        with pytest.raises(WebhookVerificationError):
            verified("whsec_" + "A" * 44, messages[0])
        log = httpx.get(f"{registry.url}/api/v1/webhooks/{hook['id']}/deliveries",
                        headers={"X-API-Key": admin}, timeout=10).json()
        assert [d["state"] for d in log["items"]] == ["delivered", "delivered"]
        assert log["items"][0]["attempts"][0]["response_status"] == 200


def test_retries_after_500s_and_timeouts_keep_the_webhook_id(hooks: Tuple[Registry, str], contract_id: str) -> None:
    registry, admin = hooks
    with receiving() as receiver:
        receiver.script = [(500, 0.0), (200, 3.0)]  # a 500, then an answer too slow to wait for
        hook = subscribe(registry, admin, receiver.url, ["run.created"], contract_id=contract_id)
        run = registry.client().create_run(contract_id=contract_id)
        messages = receiver.wait_for(3)
        ids = {headers["webhook-id"] for headers, _ in messages}
        assert len(ids) == 1, ids
        for m in messages:
            assert verified(hook["secret"], m)["data"]["id"] == run["id"]
        # Each attempt is signed afresh: receivers refuse stale timestamps.
        stamps = [int(headers["webhook-timestamp"]) for headers, _ in messages]
        assert stamps == sorted(stamps)


def test_cli_creates_a_subscription_the_running_server_uses(hooks: Tuple[Registry, str], contract_id: str) -> None:
    registry, _ = hooks
    with receiving() as receiver:
        out = registry.cli("webhooks", "create", "--url", receiver.url, "--events", "run.completed",
                           "--contract-id", contract_id, "--allow-private-webhook-targets").stdout
        created = json.loads(out)
        assert created["id"].startswith("whk_") and created["secret"].startswith("whsec_")
        listed = json.loads(registry.cli("webhooks", "list").stdout)
        assert created["id"] in [w["id"] for w in listed]
        assert created["secret"] not in json.dumps(listed)
        client = registry.client()
        run = client.create_run(contract_id=contract_id)
        client.update_run(run["id"], status="completed")
        payload = verified(created["secret"], receiver.wait_for(1)[0])
        assert payload["type"] == "run.completed"
        tested = json.loads(registry.cli("webhooks", "test", created["id"],
                                         "--allow-private-webhook-targets").stdout)
        assert tested["state"] == "delivered"
        assert verified(created["secret"], receiver.wait_for(2)[1])["type"] == "webhook.test"
        registry.cli("webhooks", "delete", created["id"])


def test_private_targets_are_refused_by_default(registry: Registry) -> None:
    admin = registry.create_key("webhook-admin", "admin")
    for url in ("http://127.0.0.1:9/hook", "http://169.254.169.254/latest/meta-data", "http://[::1]/"):
        response = httpx.post(f"{registry.url}/api/v1/webhooks", headers={"X-API-Key": admin},
                              json={"url": url, "events": ["run.failed"]}, timeout=10)
        assert response.status_code == 422, response.text
        assert "--allow-private-webhook-targets" in response.json()["detail"]["message"]
    # A write key may not manage webhooks.
    response = httpx.get(f"{registry.url}/api/v1/webhooks", headers={"X-API-Key": registry.api_key}, timeout=10)
    assert response.status_code == 403
    assert "admin" in response.json()["detail"]["message"]


def test_an_event_survives_a_sigkill_while_its_receiver_is_down(tmp_path: Path, contract_id: str) -> None:
    """The receiver is down; a run fails; the server is killed with SIGKILL
    before it could deliver; it restarts; the receiver comes up; the event
    arrives, exactly as signed."""
    port = free_port()
    with run_registry(tmp_path, SERVE_ARGS) as first:
        admin = first.create_key("ops", "admin")
        hook = subscribe(first, admin, f"http://127.0.0.1:{port}/hook", ["run.failed"])
        client = first.client()
        run = client.create_run(contract_id=contract_id)
        client.update_run(run["id"], status="failed")  # acknowledged: committed with its message
        time.sleep(0.5)  # an attempt or two fail against the closed port
        first.process.kill()
        first.process.wait(timeout=10)
    with run_registry(tmp_path, SERVE_ARGS, api_key=first.api_key) as second:
        with receiving(port) as receiver:
            # The first retries back off; the message arrives within the
            # backoff of a few attempts.
            messages = receiver.wait_for(1, timeout=60)
            payload = verified(hook["secret"], messages[0])
            assert payload["type"] == "run.failed"
            assert payload["data"]["id"] == run["id"]
            log = httpx.get(f"{second.url}/api/v1/webhooks/{hook['id']}/deliveries",
                            headers={"X-API-Key": admin}, timeout=10).json()
            assert log["total"] == 1
            attempts = log["items"][0]["attempts"]
            assert attempts[0]["response_status"] is None  # refused while the receiver was down
            assert attempts[-1]["response_status"] == 200

