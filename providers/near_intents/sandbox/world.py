"""The state behind the NEAR Intents doubles: the verifier contract (balances per account and
token id, public keys, salts, used nonces, executed intents), the bridge service (supported
tokens, deposit addresses, deposits, withdrawals) and the relay's published intents.

The verifier checks every signed intent (`ft_withdraw`, `token_diff`) as `intents.near` does:
the NEP-413 signature against a public key registered for the signer, the recipient, the
deadline, the versioned nonce (known salt, nonce deadline not before the intent's, not
expired, not used; legacy nonces refused), and balances (a `token_diff`'s negative deltas).
Scripts (for tests and the demo): a deposit seen but not credited, credited late or credited
less than sent, an endpoint down, a relay that answers too late."""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

import base58

from providers.near_intents.signing import intent_hash, verify_nep413, versioned_nonce_parse
from providers.near_intents.tokens import TokenIdError, token_id_parse


class Refused(Exception):
    """The verifier refused an intent; the message is the verifier's error text."""


def random_hash() -> str:
    return base58.b58encode(os.urandom(32)).decode()


@dataclass
class SandboxToken:
    token_id: str
    symbol: str
    decimals: int
    chain: str  # e.g. eth:42161
    asset_address: str = ""

    def as_bridge(self) -> dict:
        _, contract, _ = token_id_parse(self.token_id)
        return {
            "intents_token_id": self.token_id,
            "standard": "nep141",
            "near_token_id": contract,
            "asset_name": self.symbol,
            "decimals": self.decimals,
            "min_deposit_amount": "1",
            "min_withdrawal_amount": "1",
            "withdrawal_fee": "0",
            "defuse_asset_identifier": f"{self.chain}:{self.asset_address or contract}",
        }


@dataclass
class Deposit:
    tx_hash: str
    account_id: str
    token_id: str
    chain: str
    address: str
    amount_raw: int  # as seen on the source chain
    credit_raw: int  # what the verifier will credit (less when scripted so)
    status: str = "PENDING"
    credit_at: float | None = None  # monotonic time; None: only when credited by hand

    def as_bridge(self, token: SandboxToken | None) -> dict:
        _, contract, _ = token_id_parse(self.token_id)
        amount = self.credit_raw if self.status in ("CREDITED", "COMPLETED") else self.amount_raw
        return {
            "tx_hash": self.tx_hash,
            "chain": self.chain,
            "defuse_asset_identifier": f"{self.chain}:{contract}",
            "near_token_id": contract,
            "decimals": token.decimals if token else 0,
            "amount": amount,
            "account_id": self.account_id,
            "address": self.address,
            "status": self.status,
        }


@dataclass
class Published:
    intent_hash: str
    signed: dict
    status: str = "PENDING"  # PENDING | TX_BROADCASTED | SETTLED | NOT_FOUND_OR_NOT_VALID
    tx_hash: str = ""
    settle_at: float = 0.0
    reason: str = ""


@dataclass
class World:
    verifier: str = "intents.near"
    block_height: int = 1000
    balances: dict[tuple[str, str], int] = field(default_factory=dict)
    public_keys: dict[str, set[str]] = field(default_factory=dict)
    salts: list[bytes] = field(default_factory=lambda: [os.urandom(4)])
    used_nonces: set[tuple[str, str]] = field(default_factory=set)
    tokens: dict[str, SandboxToken] = field(default_factory=dict)
    deposit_addresses: dict[tuple[str, str], str] = field(default_factory=dict)
    deposits: list[Deposit] = field(default_factory=list)
    withdrawals: dict[str, dict] = field(default_factory=dict)  # NEAR tx hash -> withdrawal
    published: dict[str, Published] = field(default_factory=dict)
    down: set[str] = field(default_factory=set)  # endpoints answering 503: rpc, bridge, relay
    settle_delay: float = 0.0  # seconds between publish and settlement
    withdrawal_delay: float = 0.0  # seconds between settlement and the bridge's COMPLETED
    publish_delay: float = 0.0  # seconds the relay waits before answering publish_intent
    strict_nonces: bool = True  # refuse legacy (unversioned) nonces
    calls: list[tuple[str, str]] = field(default_factory=list)  # (endpoint, method) seen
    relay: object = field(default=None, repr=False)  # the relay's websocket hub (sandbox/relay_ws.py)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def __post_init__(self):
        if self.relay is None:
            from providers.near_intents.sandbox.relay_ws import RelayHub

            self.relay = RelayHub(self)

    # --- scripting -------------------------------------------------------------------------------
    def is_down(self, endpoint: str) -> bool:
        return endpoint in self.down

    def token_add(self, token_id: str, symbol: str, decimals: int, chain: str, asset_address: str = "") -> None:
        with self.lock:
            self.tokens[token_id] = SandboxToken(token_id, symbol, decimals, chain, asset_address)

    def balance_set(self, account_id: str, token_id: str, raw: int) -> None:
        with self.lock:
            self.balances[(account_id, token_id)] = raw
            self.block_height += 1

    def balance(self, account_id: str, token_id: str) -> int:
        with self.lock:
            self.tick()
            return self.balances.get((account_id, token_id), 0)

    def public_key_add(self, account_id: str, public_key: str) -> None:
        with self.lock:
            self.public_keys.setdefault(account_id, set()).add(public_key)

    def salt_rotate(self) -> bytes:
        """A new current salt; the previous ones stay valid (as `update_current_salt`)."""
        with self.lock:
            self.salts.append(os.urandom(4))
            return self.salts[-1]

    def deposit_script(
        self,
        *,
        account_id: str,
        token_id: str,
        amount_raw: int,
        credit_raw: int | None = None,
        credit_after: float | None = None,
        tx_hash: str | None = None,
        chain: str | None = None,
    ) -> Deposit:
        """A deposit the bridge has seen on the source chain (PENDING). It is credited to the
        verifier `credit_after` seconds later (None: only by `deposit_credit`), with `credit_raw`
        (default: the whole amount; less for a "credited less" script)."""
        with self.lock:
            token = self.tokens.get(token_id)
            chain = chain or (token.chain if token else "near:mainnet")
            deposit = Deposit(
                tx_hash=tx_hash or "0x" + os.urandom(32).hex(),
                account_id=account_id,
                token_id=token_id,
                chain=chain,
                address=self.deposit_addresses.get((account_id, chain), ""),
                amount_raw=amount_raw,
                credit_raw=amount_raw if credit_raw is None else credit_raw,
                credit_at=None if credit_after is None else time.monotonic() + credit_after,
            )
            self.deposits.append(deposit)
            return deposit

    def deposit_credit(self, tx_hash: str, *, status: str = "CREDITED") -> None:
        with self.lock:
            for deposit in self.deposits:
                if deposit.tx_hash == tx_hash and deposit.status == "PENDING":
                    self._credit(deposit, status)

    def deposit_fail(self, tx_hash: str) -> None:
        with self.lock:
            for deposit in self.deposits:
                if deposit.tx_hash == tx_hash and deposit.status == "PENDING":
                    deposit.status = "FAILED"

    def _credit(self, deposit: Deposit, status: str) -> None:
        key = (deposit.account_id, deposit.token_id)
        self.balances[key] = self.balances.get(key, 0) + deposit.credit_raw
        deposit.status = status
        self.block_height += 1

    def tick(self) -> None:
        """Advance what is due: timed deposit credits, settlements, bridge withdrawals."""
        now = time.monotonic()
        with self.lock:
            for deposit in self.deposits:
                if deposit.status == "PENDING" and deposit.credit_at is not None and deposit.credit_at <= now:
                    self._credit(deposit, "CREDITED")
            for item in self.published.values():
                if item.status == "PENDING" and item.settle_at <= now:
                    self._settle(item)
            for w in self.withdrawals.values():
                if w["status"] == "PENDING" and w["complete_at"] <= now:
                    w["status"] = "COMPLETED"
                    w["transfer_tx_hash"] = "0x" + os.urandom(32).hex()

    # --- the verifier ------------------------------------------------------------------------------
    def view(self, method: str, args: dict):
        """A view method of the verifier."""
        self.tick()
        with self.lock:
            if method == "mt_batch_balance_of":
                return [str(self.balances.get((args["account_id"], t), 0)) for t in args["token_ids"]]
            if method == "mt_balance_of":
                return str(self.balances.get((args["account_id"], args["token_id"]), 0))
            if method == "current_salt":
                return self.salts[-1].hex()
            if method == "is_valid_salt":
                return bytes.fromhex(args["salt"]) in self.salts
            if method == "has_public_key":
                return args["public_key"] in self.public_keys.get(args["account_id"], set())
            if method == "public_keys_of":
                return sorted(self.public_keys.get(args["account_id"], set()))
            if method == "is_nonce_used":
                return (args["account_id"], args["nonce"]) in self.used_nonces
        raise KeyError(method)

    def verify(self, signed: dict) -> tuple[str, str, list[dict]]:
        """(signer, nonce, intents) of a valid signed intent; Refused otherwise (no state change)."""
        if signed.get("standard") != "nep413":
            raise Refused("invalid intent")
        if not verify_nep413(signed):
            raise Refused("invalid signature")
        payload = signed["payload"]
        try:
            message = json.loads(payload["message"])
            deadline = datetime.fromisoformat(message["deadline"].replace("Z", "+00:00"))
            signer, intents = message["signer_id"], message["intents"]
            nonce = base64.b64decode(payload["nonce"])
        except (KeyError, TypeError, ValueError) as exc:
            raise Refused(f"JSON: {exc}") from None
        if payload["recipient"] != self.verifier:
            raise Refused("wrong verifying_contract")
        now_ns = time.time_ns()
        if deadline.timestamp() * 1e9 < now_ns:
            raise Refused("deadline has expired")
        if signed["public_key"] not in self.public_keys.get(signer, set()):
            raise Refused(f"public key '{signed['public_key']}' doesn't exist for account '{signer}'")
        parsed = versioned_nonce_parse(nonce)
        if parsed is None:
            if self.strict_nonces:
                raise Refused("invalid nonce")
        else:
            salt, nonce_deadline_ns = parsed
            if salt not in self.salts:
                raise Refused("invalid salt")
            if deadline.timestamp() * 1e9 > nonce_deadline_ns + 1e6:
                raise Refused("deadline is greater than nonce")
            if nonce_deadline_ns < now_ns:
                raise Refused("nonce was already expired")
        if (signer, payload["nonce"]) in self.used_nonces:
            raise Refused("nonce was already used")
        self._apply(signer, intents, dry_run=True)
        return signer, payload["nonce"], intents

    def _apply(self, signer: str, intents: list[dict], *, dry_run: bool) -> list[dict]:
        """Apply the intents to the balances (or only check them); returns bridge withdrawals."""
        balances = dict(self.balances)
        withdrawals = []
        for intent in intents:
            kind = intent.get("intent")
            if kind == "ft_withdraw":
                token_id = f"nep141:{intent['token']}"
                try:
                    token_id_parse(token_id)
                    amount = int(intent["amount"])
                except (TokenIdError, KeyError, ValueError):
                    raise Refused("invalid intent") from None
                key = (signer, token_id)
                if amount <= 0 or balances.get(key, 0) < amount:
                    raise Refused("insufficient balance or overflow")
                balances[key] -= amount
                memo = intent.get("memo") or ""
                if memo.startswith("WITHDRAW_TO:"):
                    withdrawals.append({"token_id": token_id, "amount": amount, "address": memo[len("WITHDRAW_TO:") :]})
            elif kind == "token_diff":
                diff = intent.get("diff")
                if not isinstance(diff, dict) or not diff:
                    raise Refused("invalid intent")
                for token_id, delta in diff.items():
                    try:
                        token_id_parse(token_id)
                        amount = int(delta)
                    except (TokenIdError, TypeError, ValueError):
                        raise Refused("invalid intent") from None
                    if amount == 0:
                        raise Refused("invalid intent: zero delta")
                    key = (signer, token_id)
                    if amount < 0 and balances.get(key, 0) < -amount:
                        raise Refused("insufficient balance or overflow")
                    balances[key] = balances.get(key, 0) + amount
            else:
                raise Refused("invalid intent")
        if not dry_run:
            self.balances = balances
            self.block_height += 1
        return withdrawals

    def _settle(self, item: Published) -> None:
        try:
            signer, nonce, intents = self.verify(item.signed)
        except Refused as exc:  # e.g. the balance went in between: the intent never settles
            item.status, item.reason = "NOT_FOUND_OR_NOT_VALID", str(exc)
            return
        withdrawals = self._apply(signer, intents, dry_run=False)
        self.used_nonces.add((signer, nonce))
        item.status, item.tx_hash = "SETTLED", random_hash()
        for w in withdrawals:
            self.withdrawals[item.tx_hash] = {
                **w,
                "status": "PENDING",
                "account_id": signer,
                "complete_at": time.monotonic() + self.withdrawal_delay,
                "transfer_tx_hash": "",
            }

    # --- the relay --------------------------------------------------------------------------------
    def publish(self, signed: dict) -> dict:
        with self.lock:
            self.tick()
            try:
                digest = intent_hash(signed)
            except (KeyError, TypeError, ValueError):
                return {"intent_hash": "", "status": "FAILED", "reason": "invalid intent"}
            if digest in self.published:
                return {"intent_hash": digest, "status": "FAILED", "reason": "nonce was already used"}
            try:
                self.verify(signed)
            except Refused as exc:
                return {"intent_hash": digest, "status": "FAILED", "reason": str(exc)}
            self.published[digest] = Published(digest, signed, settle_at=time.monotonic() + self.settle_delay)
            self.tick()
            return {"intent_hash": digest, "status": "OK"}

    def status(self, digest: str) -> dict:
        with self.lock:
            self.tick()
            item = self.published.get(digest)
            if item is None or item.status == "NOT_FOUND_OR_NOT_VALID":
                return {"intent_hash": digest, "status": "NOT_FOUND_OR_NOT_VALID"}
            answer = {"intent_hash": digest, "status": item.status}
            if item.tx_hash:
                answer["data"] = {"hash": item.tx_hash}
            return answer
