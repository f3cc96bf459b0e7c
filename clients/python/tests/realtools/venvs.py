"""Virtual environments holding the real tools (Airflow, dbt, Prefect, the
OpenAPI generators' Python side) that the integration tests run.

Each tool gets its own venv, because their dependencies conflict with each
other and with the test runner's. A venv lives under ``<repo>/.cache/venvs``
(git-ignored), named after a hash of its pinned requirements and the Python
version, so a rerun reuses it and a change of pins builds a new one. The
package under test (``clients/python``) is reinstalled into it on every test
session, without its dependencies, so the tests always see the current code.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

REPO_ROOT = Path(__file__).resolve().parents[4]
CLIENT_DIR = REPO_ROOT / "clients" / "python"
REQUIREMENTS_DIR = Path(__file__).resolve().parent / "requirements"
CACHE_DIR = Path(os.environ.get("GRIOT_TOOLS_CACHE", REPO_ROOT / ".cache" / "venvs"))

_refreshed: Dict[Path, bool] = {}


def _run(args: Sequence[str], what: str) -> None:
    result = subprocess.run(
        list(args), stdin=subprocess.DEVNULL, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{what} failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )


def tool_venv(name: str, extras: Optional[str] = None, python: Optional[str] = None) -> Path:
    """The venv for ``requirements/<name>.txt`` with the package under test
    (and its ``extras``) installed; built on first use, then reused.

    Returns the venv's root; its programs are in ``bin/``.
    """
    requirements = REQUIREMENTS_DIR / f"{name}.txt"
    interpreter = python or sys.executable
    version = subprocess.run(
        [interpreter, "-c", "import sys; print(sys.version)"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    digest = hashlib.sha256(requirements.read_bytes() + version.encode()).hexdigest()[:12]
    venv = CACHE_DIR / f"{name}-{digest}"
    stamp = venv / ".complete"
    pip: List[str] = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    if not stamp.exists():
        if venv.exists():
            subprocess.run(["rm", "-rf", str(venv)], check=True)
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        _run([interpreter, "-m", "venv", str(venv)], f"creating the {name} venv")
        _run([*pip, "install", "--upgrade", "pip"], f"upgrading pip in the {name} venv")
        _run([*pip, "install", "-r", str(requirements)], f"installing {requirements.name}")
        stamp.write_text("ok\n")
    if not _refreshed.get(venv):
        target = str(CLIENT_DIR) + (f"[{extras}]" if extras else "")
        # --no-deps: the pins above already hold every dependency, and the
        # extras' own requirements must not upgrade them behind our back.
        _run([*pip, "install", "--no-deps", "--force-reinstall", target],
             f"installing the client into the {name} venv")
        _refreshed[venv] = True
    return venv
