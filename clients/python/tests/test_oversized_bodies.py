"""A body over the server's cap gets a readable 413, whatever the client.

Python's urllib writes the whole body before it reads a byte of the answer.
A server that answers early and closes leaves such a client writing into a
reset connection (EPIPE/ECONNRESET) and it never sees why; the server reads
and discards the rest of a refused body before answering, so the 413 always
arrives.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from conftest import Registry

TWO_MIB = 2 * 1024 * 1024


def _post(registry: Registry, body: bytes, chunked: bool = False) -> urllib.error.HTTPError:
    headers = {"Content-Type": "application/json", "X-API-Key": registry.api_key}
    data: object = body
    if chunked:
        # An iterable body without a length goes out chunked.
        data = (body[i : i + 65536] for i in range(0, len(body), 65536))
        headers["Transfer-Encoding"] = "chunked"
    request = urllib.request.Request(
        f"{registry.url}/api/v1/runs", data=data, headers=headers, method="POST"  # type: ignore[arg-type]
    )
    try:
        urllib.request.urlopen(request, timeout=30)
    except urllib.error.HTTPError as error:
        return error
    raise AssertionError("an oversized body was accepted")


def _oversized() -> bytes:
    blob = "x" * TWO_MIB
    return json.dumps({"contract_id": "too-big", "metadata": {"blob": blob}}).encode()


def test_urllib_reads_the_413_every_time(registry: Registry) -> None:
    body = _oversized()
    for attempt in range(20):
        error = _post(registry, body)
        assert error.code == 413, f"attempt {attempt}: {error.code}"
        detail = json.loads(error.read())["detail"]
        assert detail["code"] == "PAYLOAD_TOO_LARGE"
        assert "--max-body-bytes" in detail["message"]


def test_chunked_bodies_over_the_cap_read_the_413_too(registry: Registry) -> None:
    for _ in range(5):
        error = _post(registry, _oversized(), chunked=True)
        assert error.code == 413
        assert json.loads(error.read())["detail"]["code"] == "PAYLOAD_TOO_LARGE"


def test_nothing_is_stored_and_the_server_still_answers(registry: Registry) -> None:
    _post(registry, _oversized())
    with registry.client() as client:
        assert client.list_runs(contract_id="too-big")["total"] == 0
        assert client.create_run(contract_id="too-big")["status"] == "pending"
