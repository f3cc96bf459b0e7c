"""Swagger UI at ``/docs`` in a real headless Chromium: Authorize with the API
key, Try it out on ``POST /api/v1/runs``, Execute with the prefilled body, and
get a 201, with a clean browser console.

The clicking is done by ``browser/swagger_try_it_out.py``, run once per module
with the Python of the ``browser`` venv (Selenium from PyPI, pinned in
``requirements/browser.txt``) so the client's own test environment does not
carry Selenium. The browser and driver are Debian's ``chromium`` and
``chromium-driver`` packages. The tests then assert on what the page showed,
what the console logged, and what the registry now holds.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List

import httpx
import pytest

from conftest import Registry, run_registry

from .venvs import tool_venv

SCRIPT = Path(__file__).resolve().parent / "browser" / "swagger_try_it_out.py"
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM = Path("/usr/bin/chromium")
#: Each explicit wait in the script; the whole session takes about 10 s here.
STEP_TIMEOUT = 15.0
SCRIPT_TIMEOUT = 90.0


@dataclass
class Session:
    registry: Registry
    result: Dict[str, Any]
    screenshot: Path
    seconds: float

    def context(self) -> str:
        """What the page showed, for failure messages."""
        r = self.result
        shot = f"screenshot: {self.screenshot}" if self.screenshot.exists() else "no screenshot"
        return (
            f"\n{shot}\nsteps:\n  " + "\n  ".join(r.get("steps") or []) +
            f"\nrequest body Swagger UI prefilled:\n{r.get('request_body')}"
            f"\nresponse body shown:\n{r.get('response_body')}"
            f"\ncurl shown:\n{r.get('curl')}"
        )


@pytest.fixture(scope="module")
def session(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    for needed, package in ((CHROMEDRIVER, "chromium-driver"), (CHROMIUM, "chromium")):
        if not needed.exists():
            pytest.fail(f"{needed} is missing: `apt-get install -y chromium chromium-driver` "
                        f"(Debian's {package} package)", pytrace=False)
    venv = tool_venv("browser")
    workdir = tmp_path_factory.mktemp("swagger-browser")
    screenshot = workdir / "swagger-ui.png"
    result_path = workdir / "result.json"
    failed_before = request.session.testsfailed
    with run_registry(workdir / "server") as registry:
        started = time.monotonic()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GRIOT_", "SE_"))}
        # Never let Selenium Manager look for (or download) a driver.
        env["SE_OFFLINE"] = "true"
        proc = subprocess.run(
            [str(venv / "bin" / "python"), str(SCRIPT),
             "--url", registry.url, "--api-key", registry.api_key,
             "--result", str(result_path), "--screenshot", str(screenshot),
             "--timeout", str(STEP_TIMEOUT)],
            stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=SCRIPT_TIMEOUT, env=env,
        )
        seconds = time.monotonic() - started
        if proc.returncode != 0 or not result_path.exists():
            pytest.fail(f"the browser script exited {proc.returncode}:\n{proc.stdout[-3000:]}\n"
                        f"{proc.stderr[-3000:]}", pytrace=False)
        result = json.loads(result_path.read_text())
        yield Session(registry, result, screenshot, seconds)
    # The picture is for diagnosing a failure; keep it only then.
    if request.session.testsfailed == failed_before and screenshot.exists():
        screenshot.unlink()


def test_every_step_of_the_click_path_was_possible(session: Session) -> None:
    assert session.result["error"] is None, (
        f"Swagger UI did not let the user get through: {session.result['error']}" + session.context())


def test_execute_on_create_run_answers_201(session: Session) -> None:
    status = session.result["status"]
    assert status == "201", (
        f"Try it out → Execute on POST /api/v1/runs showed response code {status!r}, "
        f"expected '201'" + session.context())


def test_the_browser_console_has_no_errors(session: Session) -> None:
    errors: List[Dict[str, Any]] = [
        entry for entry in session.result["console"] if entry.get("level") == "SEVERE"
    ]
    assert "console_error" not in session.result, session.result["console_error"]
    assert not errors, (
        "the browser console logged errors:\n" +
        "\n".join(f"  [{e.get('source')}] {e.get('message')}" for e in errors) + session.context())


def test_the_registry_holds_the_run_the_browser_created(session: Session) -> None:
    """The 201 is not just a picture: the run is stored, with the key's name
    as its creator and the body Swagger UI sent."""
    runs = httpx.get(f"{session.registry.url}/api/v1/runs", params={"limit": 10},
                     headers={"X-API-Key": session.registry.api_key}, timeout=10).json()["items"]
    assert len(runs) == 1, f"expected the one run created from the browser, found {runs}" + session.context()
    sent = json.loads(session.result["request_body"] or "{}")
    run = runs[0]
    assert run["contract_id"] == sent.get("contract_id"), run
    assert run["pipeline_name"] == sent.get("pipeline_name"), run
    assert run["status"] == sent.get("status", "pending"), run
    # The key Swagger UI was authorized with: conftest's bootstrap key keeps
    # the server's default name for it.
    assert run["created_by"] == "bootstrap", run


def test_the_session_is_quick(session: Session) -> None:
    assert session.seconds < 45, f"the browser session took {session.seconds:.1f}s" + session.context()
