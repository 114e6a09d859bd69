"""Intent messages for the verifier (the JSON a NEP-413 payload carries)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from providers.near_intents.tokens import token_id_parse


def deadline_text(when: datetime) -> str:
    """RFC 3339 in UTC with milliseconds, as the verifier's `deadline` is written."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def intent_message(*, signer_id: str, deadline: datetime, intents: list[dict]) -> str:
    return json.dumps(
        {"signer_id": signer_id, "deadline": deadline_text(deadline), "intents": intents}, separators=(",", ":")
    )


def ft_withdraw(*, token_id: str, amount_raw: int, chain: str, address: str) -> dict:
    """An `ft_withdraw` intent for a nep141 token: to a NEAR account (`chain` "near") it is a plain
    transfer to `address`; to another chain it goes through the bridge service (PoA): the token
    contract is the receiver and the memo says `WITHDRAW_TO:<address>`."""
    standard, contract, _ = token_id_parse(token_id)
    if standard != "nep141":
        raise ValueError(f"ft_withdraw takes nep141 tokens, not {token_id}")
    intent = {"intent": "ft_withdraw", "token": contract, "amount": str(amount_raw)}
    if chain == "near":
        intent["receiver_id"] = address
    else:
        intent["receiver_id"] = contract
        intent["memo"] = f"WITHDRAW_TO:{address}"
    return intent
