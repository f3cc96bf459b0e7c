"""Flows for the Prefect integration tests, each wired to griot-registry with
the one documented line. Run by ``driver.py`` in the Prefect venv: in
process (``import flows``) or, for cancellation and a killed process, served
by a real Prefect runner (``python flows.py serve``), since only a runner can
cancel a flow run or notice that its process died.

The contract comes from ``GRIOT_CONTRACT_ID`` (set by the test), except for
``fails``, which names it, to check both ways.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

from prefect import flow, serve

from griot_registry.integrations import Settings
from griot_registry.integrations.prefect import griot_hooks

#: What the user's own hooks saw, to check they still run next to ours.
USER_HOOK_CALLS: List[str] = []
#: What the body of ``times_out`` saw of its timeout, to show why the hooks
#: are needed: ``except Exception`` in the body does not see it.
TIMEOUT_SEEN_BY_BODY: List[str] = []


def page_someone(flow: Any, flow_run: Any, state: Any) -> None:
    USER_HOOK_CALLS.append(f"{flow.name}:{state.name}")


@flow(**griot_hooks())
def succeeds(rows: int = 3, password: str = "hunter2") -> int:
    return rows * 2


@flow(**griot_hooks(os.environ.get("GRIOT_CONTRACT_ID"), on_failure=[page_someone]))
def fails(rows: int = 3) -> int:
    raise ValueError(f"bad rows: {rows}")


@flow(**griot_hooks())
async def async_fails() -> None:
    await asyncio.sleep(0.1)
    raise RuntimeError("async boom")


@flow(timeout_seconds=1, **griot_hooks())
def times_out() -> None:
    try:
        time.sleep(30)
    except Exception as error:  # what the spec's snippet relies on
        TIMEOUT_SEEN_BY_BODY.append(f"Exception:{type(error).__name__}")
        raise
    except BaseException as error:
        TIMEOUT_SEEN_BY_BODY.append(f"BaseException:{type(error).__name__}")
        raise


@flow(**griot_hooks())
def exits() -> None:
    sys.exit(3)


#: Heartbeats every second: the run is created with a 3 s heartbeat timeout,
#: and the server's reaper (every second in the tests) fails it unless the
#: heartbeats keep coming while the flow sleeps.
FAST_HEARTBEATS = dataclasses.replace(Settings.from_env(), heartbeat_seconds=1.0)


@flow(**griot_hooks(settings=FAST_HEARTBEATS))
def slow(seconds: float = 1.0) -> float:
    """Outlives its heartbeat timeout; only heartbeats keep it alive."""
    time.sleep(seconds)
    return seconds


@flow(**griot_hooks())
def no_contract() -> str:
    """Run with no GRIOT_CONTRACT_ID: nothing to record it under."""
    return "ok"


def _started(name: str) -> None:
    """Tell the driver the body runs (so ``on_running`` is done)."""
    marker = os.environ.get("GRIOT_TEST_MARKERS")
    if marker:
        Path(marker, name).write_text(str(os.getpid()))


@flow(**griot_hooks())
def cancel_me() -> None:
    _started("cancel_me")
    time.sleep(120)


@flow(**griot_hooks())
def kill_me() -> None:
    _started("kill_me")
    time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGKILL)


DEPLOYMENTS: Dict[str, Any] = {"cancel_me": cancel_me, "kill_me": kill_me}

if __name__ == "__main__" and sys.argv[1:] == ["serve"]:
    serve(
        *(f.to_deployment(name=name) for name, f in DEPLOYMENTS.items()),
        print_starting_message=False,
        pause_on_shutdown=False,
    )
