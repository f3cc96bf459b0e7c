"""Drive the registry's Swagger UI in headless Chromium, as a person would.

Run by ``test_swagger_browser.py`` with the ``browser`` venv's Python (where
Selenium is installed), not imported by the tests: the test runner's venv
stays free of Selenium. It opens ``/docs``, authorizes with the API key,
expands ``POST /api/v1/runs``, clicks *Try it out* then *Execute* with the
body Swagger UI prefilled, and writes what the page showed (status cell,
response body, the request body sent, the browser console) as JSON to
``--result``. The test asserts on that file; this script only reports, so a
wrong answer from the server is data, not a crash. A step that cannot be done
(an element never appears) is reported in ``error`` with a screenshot.

The browser and driver are Debian's ``chromium`` and ``chromium-driver``;
the driver's path is given explicitly so Selenium Manager never tries to
download one (there is no internet here, nor in CI).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from selenium import webdriver  # type: ignore[import-not-found]
from selenium.common.exceptions import WebDriverException  # type: ignore[import-not-found]
from selenium.webdriver.chrome.service import Service  # type: ignore[import-not-found]
from selenium.webdriver.common.by import By  # type: ignore[import-not-found]
from selenium.webdriver.remote.webdriver import WebDriver  # type: ignore[import-not-found]
from selenium.webdriver.remote.webelement import WebElement  # type: ignore[import-not-found]
from selenium.webdriver.support import expected_conditions as ec  # type: ignore[import-not-found]
from selenium.webdriver.support.ui import WebDriverWait  # type: ignore[import-not-found]

CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM = "/usr/bin/chromium"

#: Flags that work on these machines as root, without a display, and keep
#: Chromium from calling home (no network beyond the registry anyway).
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,2000",
)

#: Swagger UI (5.x) renders each operation with this id when deepLinking is on,
#: which poem-openapi's page turns on: ``operations-<tag>-<operationId>``.
OPERATION = "#operations-Runs-create_run"


def start_browser(profile: Path) -> WebDriver:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    # Console messages (and failed resource loads) are read back through the
    # legacy log endpoint, which chromedriver fills only when asked to.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))


def run(url: str, api_key: str, screenshot: Path, timeout: float) -> Dict[str, Any]:
    result: Dict[str, Any] = {
        "status": None,
        "response_body": None,
        "request_body": None,
        "curl": None,
        "console": [],
        "error": None,
        "screenshot": None,
        "steps": [],
    }
    steps: List[str] = result["steps"]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="griot-chromium-") as profile:
        driver = start_browser(Path(profile))
        try:
            wait = WebDriverWait(driver, timeout)

            def step(name: str, action: Callable[[], Any]) -> Any:
                steps.append(f"{time.monotonic() - started:6.2f}s {name}")
                return action()

            def visible(css: str) -> WebElement:
                return wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, css)))

            def click(css: str) -> None:
                wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, css))).click()

            step("open /docs", lambda: driver.get(f"{url}/docs"))
            step("wait for the operations", lambda: visible(f"{OPERATION} .opblock-summary"))

            step("click Authorize", lambda: click(".auth-wrapper button.authorize"))
            key_input = step("wait for the key input",
                             lambda: visible(".modal-ux .auth-container input"))
            step("type the key", lambda: key_input.send_keys(api_key))
            step("click Authorize in the dialog",
                 lambda: click(".modal-ux .auth-btn-wrapper button.authorize"))
            # Once authorized the dialog offers Logout instead of Authorize.
            step("wait until authorized",
                 lambda: visible(".modal-ux .auth-btn-wrapper button.btn-done"))
            step("close the dialog", lambda: click(".modal-ux .auth-btn-wrapper button.btn-done"))
            step("wait for the dialog to close", lambda: wait.until(
                ec.invisibility_of_element_located((By.CSS_SELECTOR, ".modal-ux"))))

            step("expand POST /api/v1/runs", lambda: click(f"{OPERATION} .opblock-summary-control"))
            step("click Try it out", lambda: click(f"{OPERATION} button.try-out__btn"))
            body = step("read the prefilled body",
                        lambda: visible(f"{OPERATION} textarea.body-param__text"))
            result["request_body"] = body.get_attribute("value")
            step("click Execute", lambda: click(f"{OPERATION} button.execute"))
            status_cell = step("wait for the response", lambda: visible(
                f"{OPERATION} table.live-responses-table tr.response td.response-col_status"))
            result["status"] = status_cell.text.strip().split()[0] if status_cell.text.strip() else ""
            bodies = driver.find_elements(
                By.CSS_SELECTOR,
                f"{OPERATION} table.live-responses-table tr.response .response-col_description pre")
            result["response_body"] = bodies[0].text if bodies else None
            curls = driver.find_elements(By.CSS_SELECTOR, f"{OPERATION} .curl-command .curl")
            result["curl"] = curls[0].text if curls else None
            # A favicon request (or any late resource) has had time to fail by
            # now; the response above came after the page's own loads.
            steps.append(f"{time.monotonic() - started:6.2f}s done")
        except WebDriverException as exc:
            result["error"] = f"{type(exc).__name__} at step {steps[-1] if steps else '?'}: {exc.msg}"
        finally:
            try:
                result["console"] = [
                    {"level": entry.get("level"), "source": entry.get("source"),
                     "message": entry.get("message")}
                    for entry in driver.get_log("browser")
                ]
            except WebDriverException as exc:
                result["console_error"] = str(exc)
            # The test decides what a failure is; it deletes the picture when
            # everything passed.
            if driver.save_screenshot(str(screenshot)):
                result["screenshot"] = str(screenshot)
            driver.quit()
    result["seconds"] = round(time.monotonic() - started, 2)
    return result


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the registry, e.g. http://127.0.0.1:8000")
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--result", required=True, type=Path, help="where to write the JSON report")
    parser.add_argument("--screenshot", required=True, type=Path)
    parser.add_argument("--timeout", type=float, default=15.0, help="seconds per wait")
    args = parser.parse_args(argv)
    result = run(args.url.rstrip("/"), args.api_key, args.screenshot, args.timeout)
    args.result.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
