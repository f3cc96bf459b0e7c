"""The dashboard at ``/ui`` in a real headless Chromium: sign in with an API
key, open every page, use a filter, see the pass-rate chart drawn, with a
clean browser console and a screenshot of each page.

The walking is done by ``browser/dashboard_pages.py`` with the Python of the
``browser`` venv (see ``test_swagger_browser.py`` for why). The server runs
with ``--require-auth-for-reads``, so the sign-in form and its cookie are
part of the walk. Screenshots go to ``<repo>/screenshots/dashboard/``
(git-ignored); the README's pictures under ``docs/`` are copies of them.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Dict, Iterator, List

import httpx
import pytest

from conftest import Registry, run_registry

from .venvs import REPO_ROOT, tool_venv

SCRIPT = Path(__file__).resolve().parent / "browser" / "dashboard_pages.py"
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM = Path("/usr/bin/chromium")
SHOTS = REPO_ROOT / "screenshots" / "dashboard"
STEP_TIMEOUT = 15.0
SCRIPT_TIMEOUT = 120.0
CONTRACT = "orders"
HOSTILE = "<script>alert(1)</script>"


@dataclass
class Walk:
    registry: Registry
    result: Dict[str, Any]
    run_id: str

    def page(self, name: str) -> Dict[str, Any]:
        assert self.result["error"] is None, self.context()
        assert name in self.result["pages"], f"the walk never reached {name}" + self.context()
        return self.result["pages"][name]

    def context(self) -> str:
        return f"\nscreenshots: {SHOTS}\nsteps:\n  " + "\n  ".join(self.result.get("steps") or [])


def seed(url: str, key: str) -> str:
    """A fortnight of runs and validations for three contracts; returns the
    id of a failed run with validations."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    headers = {"X-API-Key": key}
    failed_run = ""
    with httpx.Client(base_url=url, headers=headers, timeout=10) as http:
        for i in range(36):
            day = now - timedelta(days=i % 14, hours=i % 5, minutes=10)
            contract = [CONTRACT, "billing", "customers"][(i // 2) % 3]
            status = ["completed", "failed", "completed", "running", "completed", "cancelled"][i % 6]
            body: Dict[str, Any] = {
                "contract_id": contract,
                "pipeline_name": HOSTILE if i == 7 else f"{contract}-nightly",
                "status": status,
                "started_at": day.isoformat(),
                "metadata": {"rows": 1000 + i, "note": "<b>not bold</b>"},
            }
            if status in ("completed", "failed", "cancelled"):
                body["completed_at"] = (day + timedelta(minutes=3 + i)).isoformat()
            run = http.post("/api/v1/runs", json=body)
            run.raise_for_status()
            run_id = run.json()["id"]
            # Three checks per run: a failed run failed one, every fifth
            # run warned on one, the rest passed.
            outcomes = ["passed", "failed" if status == "failed" else
                        "warning" if i % 5 == 2 else "passed", "passed"]
            for n, outcome in enumerate(outcomes):
                validation: Dict[str, Any] = {
                    "contract_id": contract,
                    "run_id": run_id,
                    "status": outcome,
                    "recorded_at": (day + timedelta(minutes=1 + n)).isoformat(),
                    "metrics": {"rows_validated": 1000 + i, "duration_ms": 400 + 10 * i + n},
                }
                if outcome == "failed":
                    validation["errors"] = [{"code": "null_values", "message": "customer_id has nulls",
                                             "path": "customer_id", "row_count": i}]
                if outcome == "warning":
                    validation["warnings"] = [{"code": "row_count_drop",
                                               "message": "fewer rows than usual"}]
                http.post("/api/v1/validations", json=validation).raise_for_status()
            if status == "failed" and contract == CONTRACT and not failed_run:
                failed_run = run_id
        if not failed_run:
            raise AssertionError("the seed made no failed run of the contract")
        http.patch(f"/api/v1/runs/{failed_run}", json={"metadata": {"retry": 1}}).raise_for_status()
    return failed_run


@pytest.fixture(scope="module")
def walk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Walk]:
    for needed, package in ((CHROMEDRIVER, "chromium-driver"), (CHROMIUM, "chromium")):
        if not needed.exists():
            pytest.fail(f"{needed} is missing: `apt-get install -y chromium chromium-driver` "
                        f"(Debian's {package} package)", pytrace=False)
    venv = tool_venv("browser")
    workdir = tmp_path_factory.mktemp("dashboard-browser")
    result_path = workdir / "result.json"
    with run_registry(workdir / "server", ["--require-auth-for-reads"]) as registry:
        run_id = seed(registry.url, registry.api_key)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GRIOT_", "SE_"))}
        env["SE_OFFLINE"] = "true"
        proc = subprocess.run(
            [str(venv / "bin" / "python"), str(SCRIPT),
             "--url", registry.url, "--api-key", registry.api_key,
             "--run-id", run_id, "--contract", CONTRACT,
             "--result", str(result_path), "--screenshots", str(SHOTS),
             "--timeout", str(STEP_TIMEOUT)],
            stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=SCRIPT_TIMEOUT, env=env,
        )
        if proc.returncode != 0 or not result_path.exists():
            pytest.fail(f"the browser script exited {proc.returncode}:\n{proc.stdout[-3000:]}\n"
                        f"{proc.stderr[-3000:]}", pytrace=False)
        result = json.loads(result_path.read_text())
        yield Walk(registry, result, run_id)
        log = registry.log_path.read_text(errors="replace")
        assert registry.api_key not in log, "the server logged the API key"


def test_every_step_of_the_walk_was_possible(walk: Walk) -> None:
    assert walk.result["error"] is None, walk.result["error"] + walk.context()


def test_each_page_has_its_own_title(walk: Walk) -> None:
    titles = {name: walk.page(name)["title"] for name in
              ("sign-in", "runs", "run", "validations", "validation", "contract", "not-found")}
    assert titles["sign-in"] == "Sign in · griot-registry", titles
    assert titles["runs"] == "Runs · griot-registry", titles
    assert titles["validations"] == "Validations · griot-registry", titles
    assert titles["contract"] == f"Contract {CONTRACT} · griot-registry", titles
    assert titles["not-found"] == "Not found · griot-registry", titles
    assert titles["run"].startswith("Run of "), titles
    assert titles["validation"].startswith("Validation of "), titles
    assert len(set(titles.values())) == len(titles), titles


def test_signing_in_shows_the_runs(walk: Walk) -> None:
    runs = walk.page("runs")
    assert runs["signed_in_as"] == "bootstrap"
    assert len(runs["statuses"]) == 36, runs["statuses"]


def test_a_filter_changes_the_list(walk: Walk) -> None:
    before = walk.page("runs")["statuses"]
    after = walk.page("runs-failed")["statuses"]
    assert after and set(after) == {"failed"}, after
    assert len(after) < len(before)


def test_the_first_tab_reaches_the_skip_link(walk: Walk) -> None:
    assert walk.page("runs-failed")["first_focus"] == "Skip to content"


def test_the_run_page_shows_its_history_and_validations(walk: Walk) -> None:
    run = walk.page("run")
    assert run["events"] == 2, run
    assert run["validations"] == 3, run


def test_the_validations_list_shows_them(walk: Walk) -> None:
    """108 validations, a page of 50."""
    assert walk.page("validations")["rows"] == 50


def test_the_chart_is_drawn(walk: Walk) -> None:
    chart = walk.page("contract")["chart"]
    assert chart["width"] > 300 and chart["height"] > 100, chart
    assert chart["points"] >= 5, chart
    assert chart["path"].startswith("M"), chart


def test_the_phone_layout_does_not_scroll_sideways(walk: Walk) -> None:
    assert walk.page("runs-phone")["page_width"] <= 400


def test_the_browser_console_has_no_errors(walk: Walk) -> None:
    """Nothing failed to load and nothing complained. Chromium logs the
    status of a document that is not 2xx as an error: the sign-in page
    (401, in place of the page asked for) and the 404 page answer so on
    purpose, and only those two entries are expected."""
    url = walk.registry.url

    def expected(entry: Dict[str, Any]) -> bool:
        message = str(entry.get("message"))
        return entry.get("source") == "network" and (
            message.startswith(f"{url}/ui - ") and "status of 401" in message
            or message.startswith(f"{url}/ui/runs/run_does_not_exist - ") and "status of 404" in message
        )

    errors: List[Dict[str, Any]] = [
        e for e in walk.result["console"] if e.get("level") == "SEVERE" and not expected(e)
    ]
    assert "console_error" not in walk.result, walk.result["console_error"]
    assert not errors, "the browser console logged errors:\n" + "\n".join(
        f"  [{e.get('source')}] {e.get('message')}" for e in errors) + walk.context()


def test_hostile_values_ran_no_script(walk: Walk) -> None:
    """The seeded pipeline name is a script element; had it run, its alert
    would have stopped the walk. Its text is shown instead."""
    page = httpx.get(f"{walk.registry.url}/ui?pipeline_name={HOSTILE}",
                     headers={"X-API-Key": walk.registry.api_key}, timeout=10).text
    assert HOSTILE not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_a_screenshot_of_every_page(walk: Walk) -> None:
    for name in ("sign-in", "runs", "runs-failed", "run", "validations", "validation", "contract",
                 "not-found", "runs-phone"):
        shot = Path(walk.page(name)["screenshot"])
        assert shot.is_file() and shot.stat().st_size > 5000, shot
