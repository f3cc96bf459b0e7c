"""Walk the registry's dashboard (``/ui``) in headless Chromium, as a person
would, and report what each page showed.

Run by ``test_dashboard_browser.py`` with the ``browser`` venv's Python, like
``swagger_try_it_out.py``. The server runs with ``--require-auth-for-reads``,
so the walk starts at the sign-in form: it types the key, submits, and then
opens every page (the runs list, a run, the validations list, a contract
with its chart, and the 404 page), takes a screenshot of each into
``--screenshots``, uses the status filter, and collects the browser console.
It writes the report as JSON to ``--result``; the test asserts on it. A step
that cannot be done is reported in ``error``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from selenium.common.exceptions import WebDriverException  # type: ignore[import-not-found]
from selenium.webdriver.common.by import By  # type: ignore[import-not-found]
from selenium.webdriver.support import expected_conditions as ec  # type: ignore[import-not-found]
from selenium.webdriver.support.ui import Select, WebDriverWait  # type: ignore[import-not-found]

sys.path.insert(0, str(Path(__file__).resolve().parent))
from swagger_try_it_out import start_browser  # noqa: E402


def run(url: str, api_key: str, run_id: str, contract: str, shots: Path,
        timeout: float) -> Dict[str, Any]:
    result: Dict[str, Any] = {"pages": {}, "console": [], "error": None, "steps": []}
    steps: List[str] = result["steps"]
    pages: Dict[str, Any] = result["pages"]
    started = time.monotonic()
    shots.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="griot-chromium-") as profile:
        driver = start_browser(Path(profile))
        driver.set_window_size(1280, 1500)
        try:
            wait = WebDriverWait(driver, timeout)

            def step(name: str, action: Callable[[], Any]) -> Any:
                steps.append(f"{time.monotonic() - started:6.2f}s {name}")
                return action()

            def visit(name: str, path: str, ready: str) -> None:
                step(f"open {path}", lambda: driver.get(f"{url}{path}"))
                step(f"wait for {ready}", lambda: wait.until(
                    ec.presence_of_element_located((By.CSS_SELECTOR, ready))))
                record(name)

            def record(name: str) -> None:
                shot = shots / f"{name}.png"
                driver.save_screenshot(str(shot))
                pages[name] = {
                    "url": driver.current_url,
                    "title": driver.title,
                    "h1": driver.find_element(By.TAG_NAME, "h1").text,
                    "screenshot": str(shot),
                    "console": collect_console(),
                }

            def collect_console() -> List[Dict[str, Any]]:
                entries = [
                    {"level": e.get("level"), "source": e.get("source"), "message": e.get("message")}
                    for e in driver.get_log("browser")
                ]
                result["console"].extend(entries)
                return entries

            def statuses() -> List[str]:
                return [b.text for b in driver.find_elements(By.CSS_SELECTOR, "table.runs tbody td:first-child .badge")]

            # Signing in: the protected front page answers the sign-in form.
            visit("sign-in", "/ui", "form.sign-in input[type=password]")
            step("type the key", lambda: driver.find_element(By.ID, "api-key").send_keys(api_key))
            step("submit", lambda: driver.find_element(By.CSS_SELECTOR, "form.sign-in button").click())
            step("wait for the runs", lambda: wait.until(
                ec.presence_of_element_located((By.CSS_SELECTOR, "table.runs tbody tr"))))
            record("runs")
            pages["runs"]["statuses"] = statuses()
            pages["runs"]["signed_in_as"] = driver.find_element(By.CSS_SELECTOR, ".who strong").text

            # A filter changes the list.
            step("choose status failed", lambda: Select(driver.find_element(By.ID, "f-status")).select_by_value("failed"))
            step("press Filter", lambda: driver.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]").click())
            step("wait for the filtered list", lambda: wait.until(ec.url_contains("status=failed")))
            record("runs-failed")
            pages["runs-failed"]["statuses"] = statuses()

            # Keyboard: the first Tab reaches the skip link, which is then shown.
            body = driver.find_element(By.TAG_NAME, "body")
            step("press Tab", lambda: body.send_keys("\ue004"))
            pages["runs-failed"]["first_focus"] = driver.switch_to.active_element.text

            visit("run", f"/ui/runs/{run_id}", "ol.timeline li")
            pages["run"]["events"] = len(driver.find_elements(By.CSS_SELECTOR, "ol.timeline li"))
            pages["run"]["validations"] = len(driver.find_elements(By.CSS_SELECTOR, "article.validation"))

            visit("validations", "/ui/validations", "table.validations tbody tr")
            pages["validations"]["rows"] = len(driver.find_elements(By.CSS_SELECTOR, "table.validations tbody tr"))

            # Keyboard only: focus the first validation's link and press Enter.
            link = driver.find_element(By.CSS_SELECTOR, "table.validations tbody tr a[href^='/ui/validations/']")
            step("focus the first validation", lambda: driver.execute_script("arguments[0].focus()", link))
            step("press Enter", lambda: driver.switch_to.active_element.send_keys("\ue007"))
            step("wait for the validation page", lambda: wait.until(
                ec.presence_of_element_located((By.CSS_SELECTOR, "article.validation"))))
            record("validation")

            visit("contract", f"/ui/contracts/{contract}", "svg.chart")
            chart = driver.find_element(By.CSS_SELECTOR, "svg.chart")
            pages["contract"]["chart"] = {
                "width": chart.size["width"],
                "height": chart.size["height"],
                "points": len(chart.find_elements(By.CSS_SELECTOR, "circle")),
                "path": chart.find_element(By.CSS_SELECTOR, "path.rate").get_attribute("d"),
            }

            visit("not-found", "/ui/runs/run_does_not_exist", "main h1")

            # A narrow phone-sized window still shows the list without
            # scrolling the whole page sideways.
            driver.set_window_size(390, 900)
            visit("runs-phone", "/ui", "table.runs")
            pages["runs-phone"]["page_width"] = driver.execute_script(
                "return document.documentElement.scrollWidth")
            steps.append(f"{time.monotonic() - started:6.2f}s done")
        except WebDriverException as exc:
            result["error"] = f"{type(exc).__name__} at step {steps[-1] if steps else '?'}: {exc.msg}"
            try:
                driver.save_screenshot(str(shots / "error.png"))
            except WebDriverException:
                pass
        finally:
            try:
                result["console"].extend(
                    {"level": e.get("level"), "source": e.get("source"), "message": e.get("message")}
                    for e in driver.get_log("browser"))
            except WebDriverException as exc:
                result["console_error"] = str(exc)
            driver.quit()
    result["seconds"] = round(time.monotonic() - started, 2)
    return result


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--run-id", required=True, help="a run whose page to open")
    parser.add_argument("--contract", required=True, help="a contract whose page to open")
    parser.add_argument("--result", required=True, type=Path)
    parser.add_argument("--screenshots", required=True, type=Path, help="a folder for one PNG per page")
    parser.add_argument("--timeout", type=float, default=15.0)
    args = parser.parse_args(argv)
    result = run(args.url.rstrip("/"), args.api_key, args.run_id, args.contract,
                 args.screenshots, args.timeout)
    args.result.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
