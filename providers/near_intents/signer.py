"""Signed intents of the desk's solver account: the intents, a deadline, the verifier's current
salt in a versioned nonce, NEP-413 with the solver key (`solver_keys`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from providers.near_intents.client import NearIntentsClient
from providers.near_intents.intents import intent_message
from providers.near_intents.signing import intent_hash, sign_nep413, versioned_nonce
from providers.near_intents.solver_keys import solver_seed


@dataclass(frozen=True)
class SignedIntent:
    intent_hash: str  # base58 of the NEP-413 prehash: what get_status is asked about
    signed_data: dict  # the MultiPayload to publish
    deadline: datetime


def intent_sign(client: NearIntentsClient, *, intents: list[dict], deadline: datetime) -> SignedIntent:
    """Sign `intents` for the solver account (reads `current_salt` from the verifier)."""
    net = client.net
    nonce = versioned_nonce(salt=client.current_salt(), deadline=deadline)
    message = intent_message(signer_id=net.solver_account, deadline=deadline, intents=intents)
    signed = sign_nep413(solver_seed(net.name), message=message, nonce=nonce, recipient=net.verifier)
    return SignedIntent(intent_hash=intent_hash(signed), signed_data=signed, deadline=deadline)
