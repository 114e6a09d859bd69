"""Where the Ostium signer gets a delegate key from. Apps register a source (the delegations
app registers `delegations.keys.delegate_key_for_trader`, which decrypts through
`delegate_key_load`); without one, or when it has no key for the network, the adapter falls
back to OSTIUM_DELEGATE_KEY_FILE / the trader key. Keeps `providers` free of app imports."""

from __future__ import annotations

from collections.abc import Callable

DelegateKeySource = Callable[[str, str], "str | None"]
_source: DelegateKeySource | None = None


def register_delegate_key_source(source: DelegateKeySource | None) -> None:
    """`source(network, trader_address) -> hex key | None`."""
    global _source
    _source = source


def delegate_key_for(network: str, trader: str) -> str | None:
    return _source(network, trader) if _source is not None else None
