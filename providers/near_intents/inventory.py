"""NEAR Intents inventory for the treasury: the solver account's balances on the verifier
(`mt_batch_balance_of` through NEAR RPC `query/call_function`), with each token's symbol and
decimals from the bridge service's `supported_tokens` (or the well-known list)."""

from __future__ import annotations

from providers.interface import InventoryReading, VenueException
from providers.near_intents.client import NearIntentsClient
from providers.near_intents.tokens import KNOWN, TokenIdError, TokenInfo, to_units, token_id_parse


def near_tokens(client: NearIntentsClient, wanted: list[str], known: dict[str, TokenInfo] | None = None):
    """(tokens to read, problems): `wanted` token ids (all the bridge's and the well-known ones
    when empty) with their decimals from the bridge, `known` (what an earlier sync stored) or the
    well-known list. A bridge that cannot be reached is a problem, not a failure: the balances
    are on the verifier."""
    problems = []
    catalogue: dict[str, TokenInfo] = {**KNOWN, **(known or {})}
    try:
        for t in client.supported_tokens():
            catalogue[t.token_id] = TokenInfo(t.token_id, t.symbol, t.decimals)
    except VenueException as exc:
        problems.append(f"bridge supported_tokens: {exc.error.code}: {exc.error.message}")
    ids = list(dict.fromkeys(wanted or catalogue))
    tokens = []
    for token_id in ids:
        try:
            token_id_parse(token_id)
        except TokenIdError as exc:
            problems.append(str(exc))
            continue
        if token_id not in catalogue:
            problems.append(f"{token_id}: decimals unknown (not listed by the bridge service)")
            continue
        tokens.append(catalogue[token_id])
    return tokens, problems


def near_inventory(client: NearIntentsClient, tokens: list[TokenInfo]) -> tuple[list[InventoryReading], int]:
    """The solver account's credited balance of each token (one RPC call), and the block read."""
    account = client.net.solver_account
    if not tokens:
        return [], 0
    raw, block = client.mt_batch_balance_of(account, [t.token_id for t in tokens])
    readings = [
        InventoryReading(
            venue="near_intents",
            account=account,
            asset=t.token_id,
            symbol=t.symbol,
            decimals=t.decimals,
            credited=to_units(value, t.decimals),
        )
        for t, value in zip(tokens, raw, strict=True)
    ]
    return readings, block
