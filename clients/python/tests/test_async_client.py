"""RegistryClient (async) against the live server: every method.

Async tests run on anyio's pytest plugin (``@pytest.mark.anyio``), which
comes with httpx's dependency anyio.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import AsyncIterator

import pytest

from griot_registry import NotFoundError, RegistryClient

from conftest import Registry

pytestmark = pytest.mark.anyio

PLUS_5 = timezone(timedelta(hours=5))


@pytest.fixture
async def aclient(registry: Registry) -> AsyncIterator[RegistryClient]:
    async with RegistryClient(registry.url, api_key=registry.api_key) as client:
        yield client


async def test_health(aclient: RegistryClient) -> None:
    health = await aclient.health()
    assert health["status"] == "ok" and health["version"]


@pytest.mark.parametrize("suffix", ["", "/", "/api/v1", "/api/v1/"])
async def test_base_url_variants(registry: Registry, contract_id: str, suffix: str) -> None:
    async with RegistryClient(registry.url + suffix, api_key=registry.api_key) as client:
        assert client.base_url == registry.url
        run = await client.create_run(contract_id=contract_id)
        assert (await client.get_run(run["id"]))["id"] == run["id"]


async def test_async_context_manager_and_aclose(registry: Registry) -> None:
    async with RegistryClient(registry.url) as client:
        assert not client.is_closed
    assert client.is_closed
    other = RegistryClient(registry.url)
    await other.health()
    await other.aclose()
    assert other.is_closed


async def test_create_get_update_run(aclient: RegistryClient, contract_id: str) -> None:
    run = await aclient.create_run(
        contract_id=contract_id,
        pipeline_name="daily-etl",
        pipeline_id="ext-1",
        status="running",
        metadata={"a": 1, "b": 2},
        started_at=datetime(2024, 1, 15, 15, 0, tzinfo=PLUS_5),
    )
    assert run["id"].startswith("run_") and run["status"] == "running"
    assert run["created_by"] == "bootstrap"
    assert run["started_at"].startswith("2024-01-15T10:00:00")
    assert await aclient.get_run(run["id"]) == run

    updated = await aclient.update_run(
        run["id"], status="failed", metadata={"a": None, "c": 3}, pipeline_name="renamed", pipeline_id="ext-2"
    )
    assert updated["status"] == "failed" and updated["completed_at"] is not None
    assert updated["metadata"] == {"b": 2, "c": 3}
    assert updated["pipeline_name"] == "renamed" and updated["pipeline_id"] == "ext-2"

    minimal = await aclient.create_run(contract_id)
    assert minimal["status"] == "pending" and minimal["metadata"] == {} and minimal["pipeline_name"] is None


async def test_list_and_iter_runs(aclient: RegistryClient, contract_id: str) -> None:
    ids = [
        (await aclient.create_run(contract_id, pipeline_name="p", status="running", started_at=f"2021-04-0{d}T00:00:00Z"))["id"]
        for d in range(1, 6)
    ]
    page = await aclient.list_runs(contract_id=contract_id, limit=2, offset=1)
    assert page["total"] == 5 and page["limit"] == 2 and page["offset"] == 1
    assert [r["id"] for r in page["items"]] == [ids[3], ids[2]]
    assert (await aclient.list_runs(contract_id=contract_id, pipeline_name="nope"))["total"] == 0
    assert (await aclient.list_runs(contract_id=contract_id, status="running"))["total"] == 5
    dated = await aclient.list_runs(contract_id=contract_id, start_date=date(2021, 4, 2), end_date=datetime(2021, 4, 4))
    assert [r["id"] for r in dated["items"]] == [ids[2], ids[1]]

    walked = [r["id"] async for r in aclient.iter_runs(contract_id=contract_id, page_size=2)]
    assert walked == list(reversed(ids))
    filtered = [r async for r in aclient.iter_runs(contract_id=contract_id, start_date="2021-04-05")]
    assert [r["id"] for r in filtered] == [ids[4]]


async def test_validations(aclient: RegistryClient, contract_id: str) -> None:
    run = await aclient.create_run(contract_id, status="running")
    failed = await aclient.record_validation(
        contract_id=contract_id,
        status="failed",
        run_id=run["id"],
        errors=[{"code": "schema", "message": "missing column", "path": "id"}],
        warnings=[{"code": "w1", "message": "minor"}],
        metrics={"duration_ms": 40},
        metadata={"k": "v"},
        recorded_at=datetime(2024, 5, 1, 9, 30),
    )
    assert failed["id"].startswith("val_") and failed["recorded_by"] == "bootstrap"
    assert failed["errors"][0]["code"] == "schema" and failed["warnings"] == [{"code": "w1", "message": "minor"}]
    assert failed["recorded_at"].startswith("2024-05-01T09:30:00")
    assert await aclient.get_validation(failed["id"]) == failed
    passed = await aclient.record_validation(contract_id, "passed", run_id=run["id"], metrics={"duration_ms": 60})

    page = await aclient.list_validations(contract_id=contract_id)
    assert page["total"] == 2 and [v["id"] for v in page["items"]] == [passed["id"], failed["id"]]
    assert (await aclient.list_validations(run_id=run["id"], status="failed"))["items"] == [failed]
    dated = await aclient.list_validations(contract_id=contract_id, end_date=date(2024, 5, 2))
    assert [v["id"] for v in dated["items"]] == [failed["id"]]
    assert (await aclient.list_validations(contract_id=contract_id, limit=1, offset=1))["items"][0]["id"] == failed["id"]

    walked = [v["id"] async for v in aclient.iter_validations(contract_id=contract_id, page_size=1)]
    assert walked == [passed["id"], failed["id"]]

    refs = (await aclient.get_run(run["id"]))["validations"]
    assert [r["id"] for r in refs] == [failed["id"], passed["id"]]


async def test_validation_stats(aclient: RegistryClient, contract_id: str) -> None:
    await aclient.record_validation(contract_id, "passed", metrics={"duration_ms": 10})
    await aclient.record_validation(contract_id, "warning", metrics={"duration_ms": 30})
    await aclient.record_validation(contract_id, "failed", errors=[{"code": "dupes", "message": "duplicate ids"}])
    stats = await aclient.get_validation_stats(contract_id, days=7, granularity="day")
    assert stats["days"] == 7 and stats["granularity"] == "day"
    assert stats["totals"] == {"passed": 1, "failed": 1, "warning": 1, "skipped": 0, "total": 3}
    assert stats["pass_rate"] == pytest.approx(100 / 3, abs=0.01)  # the server rounds to 2 decimals
    assert stats["avg_duration_ms"] == pytest.approx(20.0)
    assert stats["common_errors"] == [{"code": "dupes", "count": 1, "sample_message": "duplicate ids"}]
    hourly = await aclient.get_validation_stats(contract_id, days=1, granularity="hour")
    assert hourly["granularity"] == "hour" and sum(b["counts"]["total"] for b in hourly["buckets"]) == 3


async def test_api_key_from_environment(
    registry: Registry, contract_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRIOT_API_KEY", registry.api_key)
    async with RegistryClient(registry.url) as client:
        assert (await client.create_run(contract_id))["created_by"] == "bootstrap"


async def test_not_found(aclient: RegistryClient) -> None:
    with pytest.raises(NotFoundError):
        await aclient.get_run("run_missing")
