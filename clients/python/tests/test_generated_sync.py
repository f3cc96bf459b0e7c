"""The blocking client is generated from the async one by
scripts/gen_sync.py; this fails when client.py was not regenerated after a
change to async_client.py (or was edited by hand)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "gen_sync.py"


def test_client_py_is_generated_from_async_client_py() -> None:
    check = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True
    )
    assert check.returncode == 0, (
        "src/griot_registry/client.py is stale: run "
        f"`python {SCRIPT}` and commit the result\n{check.stderr}"
    )
