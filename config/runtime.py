"""Process-wide settings every entry point needs, applied once when the `config` package is
imported: web (uvicorn `config.asgi`), worker and Beat (`celery -A config`), management
commands (`manage.py`, through `config.settings`) and any later process that loads Django.

Importing `py_ecc` or `eth` (py-evm; both pulled in by web3, safe-eth-py and the Ostium SDK)
raises `sys.setrecursionlimit` to 100,000 / 12,288 for the whole process. CPython's C code
(the `json` decoder among it) then recurses far past what a thread's C stack holds, and a
deeply nested request body kills the process with SIGSEGV instead of a RecursionError. They
are imported here first, so that no later import raises the limit again, and the limit is set
back to CPython's default.
"""

from __future__ import annotations

import contextlib
import importlib
import sys

RECURSION_LIMIT = 1000  # CPython's default: what its C stack use is sized for
_RAISE_THE_LIMIT_ON_IMPORT = ("py_ecc", "eth")


def restore_recursion_limit() -> int:
    for name in _RAISE_THE_LIMIT_ON_IMPORT:
        with contextlib.suppress(ImportError):  # not installed: nothing of it raises the limit later either
            importlib.import_module(name)
    sys.setrecursionlimit(RECURSION_LIMIT)
    return RECURSION_LIMIT
