"""Monotonic ULIDs: lexicographically sortable ids that sort in creation order.

python-ulid gives random low bits within one millisecond; here, ids made in the same
millisecond by this process increment the previous one, so creation order is sort order.
(Ids from different processes in the same millisecond are ordered arbitrarily.)"""

import threading
import time

from ulid import ULID

_lock = threading.Lock()
_last = 0  # the last ULID issued by this process, as a 128-bit int
_RANDOM_BITS = 80


def new_ulid() -> str:
    global _last
    with _lock:
        ms = time.time_ns() // 1_000_000
        candidate = int(ULID.from_timestamp(ms / 1000))
        if candidate >> _RANDOM_BITS <= _last >> _RANDOM_BITS:
            candidate = _last + 1  # same (or earlier) millisecond: step past the last id
        _last = candidate
        return str(ULID.from_int(candidate))
