"""Writes the blocking client, ``client.py``, from the async one,
``async_client.py``: every method of the client is written once, as a
coroutine, and this script derives the blocking twin.

    python clients/python/scripts/gen_sync.py          # rewrite client.py
    python clients/python/scripts/gen_sync.py --check  # exit 1 if it is stale

The rewrite is plain text: first the few phrases of prose and imports that
differ between the two clients (each must be found, so a reworded source
fails here instead of yielding a half-async blocking client), then the
async words (``async def``, ``await``, ``anyio.sleep``, ``__aenter__``...)
for their blocking equivalents. tests/test_generated_sync.py runs the check.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import List, Tuple

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "griot_registry"
SOURCE = PACKAGE / "async_client.py"
TARGET = PACKAGE / "client.py"

HEADER = (
    "# Generated from async_client.py by clients/python/scripts/gen_sync.py:\n"
    "# edit async_client.py and run the script again, not this file.\n"
)

#: Exact texts of the async client and what the blocking one says instead.
PHRASES: List[Tuple[str, str]] = [
    (
        '"""The asyncio/trio client, :class:`RegistryClient`."""\n\n'
        "# The blocking client, client.py, is generated from this file by\n"
        "# clients/python/scripts/gen_sync.py: run it after any change here.\n",
        '"""The blocking client, :class:`SyncRegistryClient`."""\n',
    ),
    # The blocking client sleeps with time.sleep, a standard-library import.
    ("from types import TracebackType", "import time\nfrom types import TracebackType"),
    ("import anyio\n", ""),
    (
        "An async client for the griot-registry HTTP API (asyncio or trio, via\n"
        "    anyio). Every method is a coroutine; the ``iter_*`` methods are async\n"
        "    generators.",
        "A blocking client for the griot-registry HTTP API.",
    ),
    ("Use it as an async context manager, or await", "Use it as a context manager, or call"),
    ("Wait until the run is in a final status", "Block until the run is in a final status"),
]

#: Async words (regular expressions) and their blocking equivalents.
WORDS: List[Tuple[str, str]] = [
    (r"\basync (def|with|for)\b", r"\1"),
    (r"\bawait ", ""),
    (r"\bAsyncIterator\b", "Iterator"),
    (r"\bhttpx\.AsyncClient\b", "httpx.Client"),
    (r"\bhttpx\.AsyncBaseTransport\b", "httpx.BaseTransport"),
    (r"\banyio\.sleep\b", "time.sleep"),
    (r"\baclose\b", "close"),
    (r"\b__aenter__\b", "__enter__"),
    (r"\b__aexit__\b", "__exit__"),
    (r"\bRegistryClient\b", "SyncRegistryClient"),
]

#: Left in the output, any of these means a rule above is missing.
LEFTOVERS = re.compile(r"\b(async|await|anyio|Async\w*|aclose|__aenter__|__aexit__)\b")


def generate(source: str) -> str:
    """The blocking client's source, from the async client's."""
    text = source
    for old, new in PHRASES:
        if old not in text:
            raise SystemExit(f"gen_sync: {SOURCE.name} no longer contains {old!r}")
        text = text.replace(old, new)
    for pattern, replacement in WORDS:
        text = re.sub(pattern, replacement, text)
    leftover = LEFTOVERS.search(text)
    if leftover is not None:
        line = text.count("\n", 0, leftover.start()) + 1
        raise SystemExit(f"gen_sync: {leftover.group()!r} left at line {line} of the output")
    return HEADER + text


def main(argv: List[str]) -> int:
    expected = generate(SOURCE.read_text(encoding="utf-8"))
    if argv == ["--check"]:
        if TARGET.read_text(encoding="utf-8") != expected:
            print(f"{TARGET} is stale: run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    if argv:
        print(__doc__, file=sys.stderr)
        return 2
    TARGET.write_text(expected, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
