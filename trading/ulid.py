"""Monotonic ULIDs: lexicographically sortable ids that sort in creation order.

python-ulid gives random low bits within one millisecond; here, ids made in the same
millisecond by this process increment the previous one, so creation order is sort order.
(Ids from different processes in the same millisecond are ordered arbitrarily.)"""

import os
import threading
import time

_lock = threading.Lock()
_last = 0  # the last ULID issued by this process, as a 128-bit int
_RANDOM_BITS = 80


def _next() -> int:
    """The next ULID as an int (under `_lock`): in a millisecond after the last id's, the time in
    its high 48 bits and 80 random bits below (as python-ulid makes them, without its objects:
    this runs for every event written); in the same (or an earlier) one, the last id + 1, and no
    random bits are drawn."""
    ms = time.time_ns() // 1_000_000
    if ms <= _last >> _RANDOM_BITS:
        return _last + 1
    return ms << _RANDOM_BITS | int.from_bytes(os.urandom(10), "big")


def new_ulid() -> str:
    global _last
    with _lock:
        candidate = _last = _next()
    return _encode(candidate)


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


_PAIRS = [a + b for a in _CROCKFORD for b in _CROCKFORD]  # 10 bits -> two characters
_SHIFTS = range(120, -10, -10)


def _encode(value: int) -> str:
    """Crockford base32 of a 128-bit int, 26 characters (as python-ulid spells it)."""
    return "".join([_PAIRS[(value >> shift) & 1023] for shift in _SHIFTS])


def new_ulids(count: int) -> list[str]:
    """`count` monotonic ULIDs at once (bulk event writes): one timestamp, then increments."""
    global _last
    if count <= 0:
        return []
    with _lock:
        candidate = _next()
        _last = candidate + count - 1
    return [_encode(candidate + i) for i in range(count)]


def new_ulid_prefix(suffix_chars: int = 6) -> str:
    """Reserve a block of 32**suffix_chars consecutive monotonic ULIDs for set-based SQL that
    numbers its rows itself, and return the characters they share: row `n` of the block is
    `prefix + ulid_suffix(n)` (see `ulid_suffix_sql`). The block starts at the next id aligned to
    its size, so within it only the last `suffix_chars` characters vary; ids issued afterwards
    by this process sort after the whole block."""
    global _last
    bits = 5 * suffix_chars
    with _lock:
        candidate = _next()
        base = -(-candidate >> bits) << bits  # rounded up to a multiple of the block size
        _last = base + (1 << bits) - 1
    return _encode(base)[: 26 - suffix_chars]


def ulid_suffix_sql(n: str, suffix_chars: int = 6) -> str:
    """SQL spelling row number `n` (a bigint expression, 0 <= n < 32**suffix_chars) as the last
    `suffix_chars` Crockford characters of an id in a `new_ulid_prefix` block."""
    return " || ".join(
        f"substr('{_CROCKFORD}', ((({n}) >> {5 * k}) & 31)::int + 1, 1)" for k in range(suffix_chars - 1, -1, -1)
    )


def ulid_floor(when) -> str:
    """The smallest ULID of `when`'s millisecond: every id made at or after `when` sorts at or after it."""
    ms = int(when.timestamp() * 1000)
    return _encode(ms << _RANDOM_BITS)
