"""Verifier token ids (`nep141:<contract>`, `nep171:<contract>:<token>`, `nep245:<contract>:<token>`)
and amounts: the verifier counts in a token's smallest unit (U128 strings); the desk counts in
Decimal token units."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

STANDARDS = ("nep141", "nep171", "nep245")
_ACCOUNT = re.compile(r"^(?=.{2,64}$)[a-z0-9]+([-_][a-z0-9]+)*(\.[a-z0-9]+([-_][a-z0-9]+)*)*$")
MAX_U128 = 2**128 - 1


@dataclass(frozen=True)
class TokenInfo:
    token_id: str
    symbol: str
    decimals: int


# Well-known tokens (symbol, decimals), used when the bridge service does not list a token.
KNOWN: dict[str, TokenInfo] = {
    t.token_id: t
    for t in (
        TokenInfo("nep141:wrap.near", "wNEAR", 24),
        TokenInfo("nep141:usdt.tether-token.near", "USDT", 6),
        TokenInfo("nep141:btc.omft.near", "BTC", 8),
        TokenInfo("nep141:eth.omft.near", "ETH", 18),
        TokenInfo("nep141:gnosis-0x420ca0f9b9b604ce0fd9c18ef134c705e5fa3430.omft.near", "EURe", 18),
        TokenInfo("nep141:arb-0xaf88d065e77c8cc2239327c5edb3a432268e5831.omft.near", "USDC", 6),
    )
}


class TokenIdError(ValueError):
    pass


def token_id_parse(token_id: str) -> tuple[str, str, str]:
    """(standard, contract, token) of a verifier token id; TokenIdError when it is not one."""
    standard, _, rest = (token_id or "").partition(":")
    if standard not in STANDARDS or not rest:
        raise TokenIdError(f"{token_id!r} is not a token id (nep141:<contract>, nep171/nep245:<contract>:<token>)")
    contract, _, token = rest.partition(":")
    if not _ACCOUNT.match(contract):
        raise TokenIdError(f"{token_id!r}: {contract!r} is not a NEAR account id")
    if standard == "nep141" and token:
        raise TokenIdError(f"{token_id!r}: a nep141 token id has no token part")
    if standard != "nep141" and not token:
        raise TokenIdError(f"{token_id!r}: a {standard} token id needs <contract>:<token>")
    return standard, contract, token


def is_account_id(value: str) -> bool:
    return bool(_ACCOUNT.match(value or ""))


def to_units(raw: int | str, decimals: int) -> Decimal:
    return Decimal(int(raw)).scaleb(-decimals)


def to_raw(amount: Decimal, decimals: int) -> int:
    """`amount` in the token's smallest unit; TokenIdError when it has more decimals than the token."""
    scaled = amount.scaleb(decimals)
    if scaled != scaled.to_integral_value():
        raise TokenIdError(f"{amount} has more than {decimals} decimals")
    raw = int(scaled)
    if raw < 0 or raw > MAX_U128:
        raise TokenIdError(f"{amount} is out of range")
    return raw
