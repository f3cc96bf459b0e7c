"""SyncRegistryClient against the live server: every method."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import List

import pytest

from griot_registry import SyncRegistryClient

from conftest import Registry

PLUS_5 = timezone(timedelta(hours=5))


def test_health(client: SyncRegistryClient) -> None:
    health = client.health()
    assert health["status"] == "ok"
    assert isinstance(health["version"], str) and health["version"]


@pytest.mark.parametrize("suffix", ["", "/", "/api/v1", "/api/v1/", "//"])
def test_base_url_with_or_without_slash_and_api_prefix(
    registry: Registry, contract_id: str, suffix: str
) -> None:
    with SyncRegistryClient(registry.url + suffix, api_key=registry.api_key) as client:
        assert client.base_url == registry.url
        assert client.health()["status"] == "ok"
        run = client.create_run(contract_id=contract_id)
        assert client.get_run(run["id"])["id"] == run["id"]
        assert client.list_runs(contract_id=contract_id)["total"] == 1


def test_context_manager_and_close(registry: Registry) -> None:
    with registry.client() as client:
        assert not client.is_closed
    assert client.is_closed
    other = registry.client()
    other.health()
    other.close()
    assert other.is_closed
    assert "api_key=set" in repr(other) and registry.api_key not in repr(other)


def test_create_run_with_only_a_contract(client: SyncRegistryClient, contract_id: str) -> None:
    run = client.create_run(contract_id)
    assert run["id"].startswith("run_")
    assert run["contract_id"] == contract_id
    assert run["status"] == "pending"
    assert run["pipeline_name"] is None and run["pipeline_id"] is None
    assert run["metadata"] == {}
    assert run["completed_at"] is None
    assert run["created_by"] == "bootstrap"
    assert run["validations"] == []
    assert run["started_at"].endswith("Z") and run["updated_at"]


def test_create_run_with_every_field(client: SyncRegistryClient, contract_id: str) -> None:
    started = datetime(2024, 1, 15, 15, 0, 0, tzinfo=PLUS_5)
    run = client.create_run(
        contract_id=contract_id,
        pipeline_name="daily-etl",
        pipeline_id="airflow-dag-123",
        status="running",
        metadata={"dag_id": "user_events_daily", "nested": {"a": [1, 2, None]}, "ok": True},
        started_at=started,
    )
    assert run["pipeline_name"] == "daily-etl"
    assert run["pipeline_id"] == "airflow-dag-123"
    assert run["status"] == "running"
    assert run["metadata"] == {"dag_id": "user_events_daily", "nested": {"a": [1, 2, None]}, "ok": True}
    assert run["started_at"].startswith("2024-01-15T10:00:00")
    assert run["completed_at"] is None


def test_create_run_backfills_a_finished_run(client: SyncRegistryClient, contract_id: str) -> None:
    run = client.create_run(
        contract_id,
        status="completed",
        started_at="2023-06-01T08:00:00Z",
        completed_at=datetime(2023, 6, 1, 8, 30),  # naive: UTC
    )
    assert run["status"] == "completed"
    assert run["started_at"].startswith("2023-06-01T08:00:00")
    assert run["completed_at"] is not None and run["completed_at"].startswith("2023-06-01T08:30:00")


def test_get_run_returns_the_run_with_its_validations(
    client: SyncRegistryClient, contract_id: str
) -> None:
    created = client.create_run(contract_id, status="running")
    fetched = client.get_run(created["id"])
    assert fetched == created
    first = client.record_validation(contract_id, "passed", run_id=created["id"])
    second = client.record_validation(contract_id, "failed", run_id=created["id"])
    refs = client.get_run(created["id"])["validations"]
    assert [r["id"] for r in refs] == [first["id"], second["id"]]  # oldest first
    assert [r["status"] for r in refs] == ["passed", "failed"]
    assert refs[0]["recorded_at"] == first["recorded_at"]


def test_update_run(client: SyncRegistryClient, contract_id: str) -> None:
    run = client.create_run(contract_id, status="running", metadata={"keep": 1, "drop": 2, "n": {"x": 1, "y": 2}})
    updated = client.update_run(
        run["id"],
        metadata={"drop": None, "n": {"y": None, "z": 3}, "added": "yes"},
        pipeline_name="renamed",
        pipeline_id="ext-9",
    )
    assert updated["metadata"] == {"keep": 1, "n": {"x": 1, "z": 3}, "added": "yes"}
    assert updated["pipeline_name"] == "renamed"
    assert updated["pipeline_id"] == "ext-9"
    assert updated["status"] == "running" and updated["completed_at"] is None

    done = client.update_run(run["id"], status="completed")
    assert done["status"] == "completed"
    assert done["completed_at"] is not None
    assert done["metadata"] == updated["metadata"]  # status only: metadata untouched
    assert client.get_run(run["id"]) == done


def test_list_runs_filters_and_pages(client: SyncRegistryClient, contract_id: str) -> None:
    a = client.create_run(contract_id, pipeline_name="alpha", status="running", started_at="2022-05-01T00:00:00Z")
    b = client.create_run(contract_id, pipeline_name="beta", status="failed", started_at="2022-05-02T00:00:00Z")
    c = client.create_run(contract_id, pipeline_name="alpha", status="completed", started_at="2022-05-03T00:00:00Z")
    client.create_run(contract_id + "-other", pipeline_name="alpha")

    page = client.list_runs(contract_id=contract_id)
    assert page["total"] == 3 and page["limit"] == 50 and page["offset"] == 0
    assert [r["id"] for r in page["items"]] == [c["id"], b["id"], a["id"]]  # newest first
    item = page["items"][0]
    assert item["validation_summary"] == {"passed": 0, "failed": 0, "warning": 0, "skipped": 0, "total": 0}
    assert item["created_by"] == "bootstrap" and "validations" not in item

    alpha = client.list_runs(contract_id=contract_id, pipeline_name="alpha")
    assert [r["id"] for r in alpha["items"]] == [c["id"], a["id"]]
    failed = client.list_runs(contract_id=contract_id, status="failed")
    assert [r["id"] for r in failed["items"]] == [b["id"]]

    second = client.list_runs(contract_id=contract_id, limit=1, offset=1)
    assert second["total"] == 3 and second["limit"] == 1 and second["offset"] == 1
    assert [r["id"] for r in second["items"]] == [b["id"]]


def test_list_runs_date_filters_accept_datetime_date_and_str(
    client: SyncRegistryClient, contract_id: str
) -> None:
    ids = [
        client.create_run(contract_id, started_at=f"2021-03-0{day}T10:00:00Z")["id"]
        for day in (1, 2, 3)
    ]

    def listed(**filters: object) -> List[str]:
        return sorted(r["id"] for r in client.list_runs(contract_id=contract_id, **filters)["items"])  # type: ignore[arg-type]

    assert listed(start_date=date(2021, 3, 2)) == ids[1:]
    assert listed(start_date=datetime(2021, 3, 2, 10, 0)) == ids[1:]  # naive = UTC, inclusive
    assert listed(start_date=datetime(2021, 3, 2, 10, 0, 1)) == ids[2:]
    assert listed(start_date=datetime(2021, 3, 2, 15, 0, tzinfo=PLUS_5)) == ids[1:]  # 10:00Z
    assert listed(end_date=datetime(2021, 3, 2, 10, 0, tzinfo=timezone.utc)) == ids[:1]  # exclusive
    assert listed(start_date="2021-03-03") == ids[2:]
    assert listed(start_date="2021-03-01T10:00:00+00:00", end_date="2021-03-03") == ids[:2]
    assert listed(start_date=date(2021, 3, 4)) == []


def test_iter_runs_walks_every_page(client: SyncRegistryClient, contract_id: str) -> None:
    created = [client.create_run(contract_id, pipeline_name=f"p{i % 2}")["id"] for i in range(7)]
    walked = [r["id"] for r in client.iter_runs(contract_id=contract_id, page_size=3)]
    assert sorted(walked) == sorted(created) and len(walked) == 7
    assert walked == [r["id"] for r in client.list_runs(contract_id=contract_id, limit=1000)["items"]]
    p0 = list(client.iter_runs(contract_id=contract_id, pipeline_name="p0", page_size=2))
    assert len(p0) == 4 and all(r["pipeline_name"] == "p0" for r in p0)
    assert list(client.iter_runs(contract_id=contract_id, status="failed")) == []


def test_pages_follow_next_cursor(client: SyncRegistryClient, contract_id: str) -> None:
    for _ in range(5):
        client.create_run(contract_id)
    every = [r["id"] for r in client.list_runs(contract_id=contract_id, limit=100)["items"]]
    first = client.list_runs(contract_id=contract_id, limit=2)
    assert first["next_cursor"]
    second = client.list_runs(contract_id=contract_id, limit=2, cursor=first["next_cursor"])
    assert [r["id"] for r in first["items"] + second["items"]] == every[:4]
    assert second["total"] == 5 and second["offset"] == 0
    last = client.list_runs(contract_id=contract_id, limit=2, cursor=second["next_cursor"])
    assert [r["id"] for r in last["items"]] == every[4:] and last["next_cursor"] is None
    # Runs created after the walk began do not shift it.
    client.create_run(contract_id)
    again = client.list_runs(contract_id=contract_id, limit=2, cursor=first["next_cursor"])
    assert again["items"] == second["items"]
    # An offset counts on from the cursor.
    skipped = client.list_runs(contract_id=contract_id, limit=1, offset=1, cursor=first["next_cursor"])
    assert skipped["items"] == second["items"][1:]
    validations = [client.record_validation(contract_id, "passed")["id"] for _ in range(3)]
    walked = [v["id"] for v in client.iter_validations(contract_id=contract_id, page_size=2)]
    assert walked == list(reversed(validations))


def test_record_and_get_validation(client: SyncRegistryClient, contract_id: str) -> None:
    run = client.create_run(contract_id, status="running")
    validation = client.record_validation(
        contract_id=contract_id,
        status="failed",
        run_id=run["id"],
        errors=[{"code": "null_values", "message": "email has nulls", "path": "email", "row_count": 3}],
        warnings=[{"code": "slow", "message": "took long"}],
        metrics={"rows_validated": 100, "rows_failed": 3, "duration_ms": 250, "ratio": 0.97},
        metadata={"source": "s3://bucket/x.parquet"},
        recorded_at=datetime(2024, 2, 1, 12, 0, tzinfo=timezone.utc),
    )
    assert validation["id"].startswith("val_")
    assert validation["contract_id"] == contract_id and validation["run_id"] == run["id"]
    assert validation["status"] == "failed"
    assert validation["errors"] == [{"code": "null_values", "message": "email has nulls", "path": "email", "row_count": 3}]
    assert validation["warnings"] == [{"code": "slow", "message": "took long"}]
    assert validation["metrics"] == {"rows_validated": 100, "rows_failed": 3, "duration_ms": 250, "ratio": 0.97}
    assert validation["metadata"] == {"source": "s3://bucket/x.parquet"}
    assert validation["recorded_at"].startswith("2024-02-01T12:00:00")
    assert validation["recorded_by"] == "bootstrap"
    assert client.get_validation(validation["id"]) == validation

    bare = client.record_validation(contract_id, "skipped")
    assert bare["run_id"] is None and bare["errors"] == [] and bare["warnings"] == []
    assert bare["metrics"] == {} and bare["metadata"] == {}


def test_list_validations_filters_and_pages(client: SyncRegistryClient, contract_id: str) -> None:
    run = client.create_run(contract_id)
    v1 = client.record_validation(contract_id, "passed", run_id=run["id"], recorded_at="2024-03-01T00:00:00Z")
    v2 = client.record_validation(contract_id, "failed", run_id=run["id"], recorded_at="2024-03-02T00:00:00Z")
    v3 = client.record_validation(contract_id, "passed", recorded_at="2024-03-03T00:00:00Z")

    page = client.list_validations(contract_id=contract_id)
    assert page["total"] == 3
    assert [v["id"] for v in page["items"]] == [v3["id"], v2["id"], v1["id"]]
    assert page["items"][0] == v3

    assert [v["id"] for v in client.list_validations(run_id=run["id"])["items"]] == [v2["id"], v1["id"]]
    assert [v["id"] for v in client.list_validations(contract_id=contract_id, status="passed")["items"]] == [v3["id"], v1["id"]]
    dated = client.list_validations(contract_id=contract_id, start_date=date(2024, 3, 2), end_date=datetime(2024, 3, 3))
    assert [v["id"] for v in dated["items"]] == [v2["id"]]
    paged = client.list_validations(contract_id=contract_id, limit=2, offset=2)
    assert paged["limit"] == 2 and paged["offset"] == 2 and [v["id"] for v in paged["items"]] == [v1["id"]]


def test_iter_validations_walks_every_page(client: SyncRegistryClient, contract_id: str) -> None:
    recorded = [client.record_validation(contract_id, "warning")["id"] for _ in range(5)]
    walked = [v["id"] for v in client.iter_validations(contract_id=contract_id, page_size=2)]
    assert sorted(walked) == sorted(recorded) and len(walked) == 5
    assert list(client.iter_validations(contract_id=contract_id, status="passed")) == []


def test_get_validation_stats(client: SyncRegistryClient, contract_id: str) -> None:
    client.record_validation(contract_id, "passed", metrics={"duration_ms": 100})
    client.record_validation(contract_id, "passed", metrics={"duration_ms": 300})
    client.record_validation(
        contract_id, "failed",
        errors=[{"code": "null_values", "message": "nulls in id"}, {"code": "range", "message": "too big"}],
    )
    client.record_validation(contract_id, "failed", errors=[{"code": "null_values", "message": "nulls again"}])
    client.record_validation(contract_id, "skipped")

    stats = client.get_validation_stats(contract_id)
    assert stats["contract_id"] == contract_id
    assert stats["days"] == 30 and stats["granularity"] == "day"
    assert stats["totals"] == {"passed": 2, "failed": 2, "warning": 0, "skipped": 1, "total": 5}
    assert stats["pass_rate"] == pytest.approx(50.0)
    assert stats["avg_duration_ms"] == pytest.approx(200.0)
    assert stats["common_errors"][0]["code"] == "null_values"
    assert stats["common_errors"][0]["count"] == 2
    assert {e["code"] for e in stats["common_errors"]} == {"null_values", "range"}
    assert sum(b["counts"]["total"] for b in stats["buckets"]) == 5

    hourly = client.get_validation_stats(contract_id, days=1, granularity="hour")
    assert hourly["granularity"] == "hour" and hourly["days"] == 1
    assert len(hourly["buckets"]) in (24, 25)
    weekly = client.get_validation_stats(contract_id, days=14, granularity="week")
    assert weekly["granularity"] == "week" and sum(b["counts"]["total"] for b in weekly["buckets"]) == 5

    empty = client.get_validation_stats(contract_id + "-none", days=2)
    assert empty["totals"]["total"] == 0 and empty["pass_rate"] is None and empty["common_errors"] == []


def test_api_key_comes_from_the_environment(
    registry: Registry, contract_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRIOT_API_KEY", registry.api_key)
    with SyncRegistryClient(registry.url) as client:
        assert client.create_run(contract_id)["created_by"] == "bootstrap"
    # An explicit key wins over the environment.
    monkeypatch.setenv("GRIOT_API_KEY", "grk_" + "0" * 64)
    with SyncRegistryClient(registry.url, api_key=registry.api_key) as client:
        assert client.create_run(contract_id)["created_by"] == "bootstrap"


def test_reads_need_no_key(registry: Registry, contract_id: str, client: SyncRegistryClient) -> None:
    run = client.create_run(contract_id)
    with SyncRegistryClient(registry.url) as anonymous:
        assert anonymous.get_run(run["id"])["id"] == run["id"]
        assert anonymous.list_runs(contract_id=contract_id)["total"] == 1


def test_ids_with_odd_characters_are_escaped(client: SyncRegistryClient) -> None:
    # A slash, a space, a '?' and a '#' must stay inside the path segment.
    from griot_registry import NotFoundError

    with pytest.raises(NotFoundError) as info:
        client.get_run("run_a/b c?d#e")
    assert info.value.message == "Run 'run_a/b c?d#e' not found"
    weird = "contract/with space+plus?"
    client.record_validation(weird, "passed")
    assert client.get_validation_stats(weird, days=1)["totals"]["total"] >= 1
    assert client.list_validations(contract_id=weird)["total"] >= 1
