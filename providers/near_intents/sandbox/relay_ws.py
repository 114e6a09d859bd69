"""The solver relay's websocket (`/ws`) in the double, speaking the relay's JSON-RPC:

- `subscribe` with `["quote"]` or `["quote_status"]` answers a subscription id; events go out as
  `{"jsonrpc":"2.0","method":"event","params":{"subscription":<id>,"data":{...},"metadata":{...}}}`
  (or the flat shape, `params` holding the fields, for a quote emitted with `flat=True`).
- `quote_response` with `[QuoteResponse]`: the signed `token_diff` is checked by the verifier
  (signature against the solver's registered key, nonce and salt, deadline, diff signs and
  amounts against the request, balances) and answered `"OK"` or with a JSON-RPC error.
- After `window` seconds the best valid response of a quote wins (most `amount_out` for an
  exact-in request, least `amount_in` for an exact-out one): the verifier applies its diff to the
  balances, the user's intent is recorded SETTLED (for `get_status`), and the winner's
  `quote_status` subscription gets `{quote_hash, intent_hash, tx_hash}`.
- `echo` answers its params (the bench's baseline round trip).

Scripts: `quote(...)` emits a request to every subscribed solver, `send_raw` sends any text,
`disconnect` closes every connection, `storm_every` closes each new connection after that many
seconds, `refuse` turns connections away, `answer = False` leaves `quote_response` unanswered (a
relay timeout), `settle = False` never picks a winner (the quote expires), `api_key` requires
`Authorization: Bearer <key>`."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import threading
import time
import uuid
from dataclasses import dataclass, field

from providers.near_intents.signing import intent_hash

_sub_ids = itertools.count(1)


@dataclass(eq=False)
class Session:
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue
    subscriptions: dict[str, str] = field(default_factory=dict)  # topic -> subscription id
    opened_at: float = field(default_factory=time.monotonic)

    def push(self, text: str) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, text)


@dataclass
class QuoteRound:
    request: dict
    emitted_at: float
    responses: list[tuple[Session, dict]] = field(default_factory=list)
    winner: dict | None = None
    refused: list[str] = field(default_factory=list)
    picked: bool = False


class RelayHub:
    def __init__(self, world):
        self.world = world
        self.lock = threading.RLock()
        self.sessions: set[Session] = set()
        self.rounds: dict[str, QuoteRound] = {}
        self.api_key = ""
        self.window = 0.2  # seconds a quote collects responses before the winner is picked
        self.settle = True
        self.answer = True
        self.refuse = False
        self.storm_every: float | None = None
        self.connections = 0
        self.refused_connections = 0
        self.auth_headers: list[str] = []

    # --- scripting ----------------------------------------------------------------------------------
    def subscribed(self, topic: str = "quote") -> int:
        with self.lock:
            return sum(1 for s in self.sessions if topic in s.subscriptions)

    def quote(
        self,
        *,
        asset_in: str,
        asset_out: str,
        exact_amount_in: int | None = None,
        exact_amount_out: int | None = None,
        min_deadline_ms: int = 60_000,
        quote_id: str | None = None,
        flat: bool = False,
        metadata: dict | None = None,
    ) -> str:
        """Emit one quote request to every solver subscribed to `quote`; returns its quote_id."""
        quote_id = quote_id or str(uuid.uuid4())
        data = {
            "quote_id": quote_id,
            "defuse_asset_identifier_in": asset_in,
            "defuse_asset_identifier_out": asset_out,
            "min_deadline_ms": min_deadline_ms,
        }
        if exact_amount_in is not None:
            data["exact_amount_in"] = str(exact_amount_in)
        if exact_amount_out is not None:
            data["exact_amount_out"] = str(exact_amount_out)
        with self.lock:
            self.rounds.setdefault(quote_id, QuoteRound(request=data, emitted_at=time.monotonic()))
            for session in list(self.sessions):
                sub = session.subscriptions.get("quote")
                if sub is None:
                    continue
                if flat:
                    params = {"subscription": sub, **data}
                    session.push(json.dumps({"jsonrpc": "2.0", "method": "subscribe", "params": params}))
                else:
                    params = {"subscription": sub, "data": data, "metadata": metadata or {"partner_id": "sandbox"}}
                    session.push(json.dumps({"jsonrpc": "2.0", "method": "event", "params": params}))
        return quote_id

    def send_raw(self, text: str) -> None:
        with self.lock:
            for session in list(self.sessions):
                session.push(text)

    def disconnect(self) -> None:
        with self.lock:
            for session in list(self.sessions):
                session.push("__close__")

    def round(self, quote_id: str) -> QuoteRound | None:
        with self.lock:
            return self.rounds.get(quote_id)

    def status_emit(self, session: Session, quote_hash: str, intent: str, tx_hash: str) -> None:
        sub = session.subscriptions.get("quote_status")
        if sub is None:
            return
        data = {"quote_hash": quote_hash, "intent_hash": intent, "tx_hash": tx_hash}
        session.push(json.dumps({"jsonrpc": "2.0", "method": "event", "params": {"subscription": sub, "data": data}}))

    # --- the protocol -------------------------------------------------------------------------------
    def check(self, response: dict) -> QuoteRound:
        """The relay's and the verifier's checks of one quote_response (raises ValueError)."""
        quote_id = response.get("quote_id")
        with self.lock:
            rnd = self.rounds.get(quote_id)
        if rnd is None:
            raise ValueError("quote not found or expired")
        signed = response.get("signed_data") or {}
        request, output = rnd.request, response.get("quote_output") or {}
        signer, _nonce, intents = self.world.verify(signed)  # Refused is a ValueError's sibling: caught below
        if len(intents) != 1 or intents[0].get("intent") != "token_diff":
            raise ValueError("a quote is one token_diff intent")
        diff = intents[0].get("diff") or {}
        asset_in, asset_out = request["defuse_asset_identifier_in"], request["defuse_asset_identifier_out"]
        if set(diff) != {asset_in, asset_out}:
            raise ValueError("the diff names other tokens than the request")
        got_in, gave_out = int(diff[asset_in]), -int(diff[asset_out])
        if got_in <= 0 or gave_out <= 0:
            raise ValueError("the solver must receive asset_in (+) and give asset_out (-)")
        if "exact_amount_in" in request:
            if got_in != int(request["exact_amount_in"]) or str(gave_out) != str(output.get("amount_out")):
                raise ValueError("amounts do not match the request and quote_output")
        elif gave_out != int(request["exact_amount_out"]) or str(got_in) != str(output.get("amount_in")):
            raise ValueError("amounts do not match the request and quote_output")
        return rnd

    def pick(self, quote_id: str) -> None:
        """Pick the winner of a quote and settle it (called `window` seconds after the first answer)."""
        from providers.near_intents.sandbox.world import Refused, random_hash

        with self.lock:
            rnd = self.rounds.get(quote_id)
            if rnd is None or rnd.picked or not self.settle:
                return
            rnd.picked = True
            exact_in = "exact_amount_in" in rnd.request

            def score(item):
                output = item[1].get("quote_output") or {}
                return int(output["amount_out"]) if exact_in else -int(output["amount_in"])

            for session, response in sorted(rnd.responses, key=score, reverse=True):
                signed = response["signed_data"]
                with self.world.lock:
                    try:
                        signer, nonce, intents = self.world.verify(signed)
                    except Refused as exc:
                        rnd.refused.append(str(exc))
                        continue
                    self.world._apply(signer, intents, dry_run=False)
                    self.world.used_nonces.add((signer, nonce))
                    user_intent = random_hash()
                    tx_hash = random_hash()
                    from providers.near_intents.sandbox.world import Published

                    self.world.published[user_intent] = Published(
                        user_intent, signed, status="SETTLED", tx_hash=tx_hash
                    )
                rnd.winner = response
                self.status_emit(session, intent_hash(signed), user_intent, tx_hash)
                return

    async def websocket(self, scope, receive, send) -> None:
        from providers.near_intents.sandbox.world import Refused

        message = await receive()
        if message["type"] != "websocket.connect":
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        auth = headers.get("authorization", "")
        with self.lock:
            self.auth_headers.append(auth)
            refuse = self.refuse or (self.api_key and auth != f"Bearer {self.api_key}")
            if refuse:
                self.refused_connections += 1
        if refuse or scope.get("path", "") not in ("/ws", "/ws/"):
            await send({"type": "websocket.close", "code": 1008})
            return
        await send({"type": "websocket.accept"})
        session = Session(loop=asyncio.get_running_loop(), queue=asyncio.Queue())
        with self.lock:
            self.sessions.add(session)
            self.connections += 1
            storm = self.storm_every
        if storm is not None:
            session.loop.call_later(storm, session.queue.put_nowait, "__close__")

        async def writer():
            while True:
                text = await session.queue.get()
                if text == "__close__":
                    await send({"type": "websocket.close", "code": 1001})
                    return
                await send({"type": "websocket.send", "text": text})

        writing = asyncio.create_task(writer())
        try:
            while True:
                receiving = asyncio.ensure_future(receive())
                done, _ = await asyncio.wait({receiving, writing}, return_when=asyncio.FIRST_COMPLETED)
                if writing in done:
                    receiving.cancel()
                    return
                message = receiving.result()
                if message["type"] == "websocket.disconnect":
                    return
                text = message.get("text") or (message.get("bytes") or b"").decode(errors="replace")
                self._on_message(session, text, Refused)
        finally:
            writing.cancel()
            with self.lock:
                self.sessions.discard(session)

    def _on_message(self, session: Session, text: str, refused) -> None:
        try:
            request = json.loads(text)
        except ValueError:
            session.push(
                json.dumps({"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "Parse error"}})
            )
            return
        rid, method, params = request.get("id"), request.get("method"), request.get("params")

        def answer(result=None, error=None):
            body = {"jsonrpc": "2.0", "id": rid}
            body.update({"error": error} if error is not None else {"result": result})
            session.push(json.dumps(body))

        if method == "subscribe":
            topic = (params or [None])[0]
            if topic not in ("quote", "quote_status"):
                answer(error={"code": -32602, "message": f"unknown topic {topic!r}"})
                return
            sub = hashlib.sha256(f"{next(_sub_ids)}".encode()).hexdigest()[:32]
            session.subscriptions[topic] = sub
            answer(sub)
        elif method == "quote_response":
            response = (params or [{}])[0] if isinstance(params, list) else {}
            try:
                rnd = self.check(response)
            except (ValueError, KeyError, TypeError, refused) as exc:
                if self.answer:
                    answer(error={"code": -32098, "message": str(exc) or type(exc).__name__})
                return
            with self.lock:
                first = not rnd.responses
                rnd.responses.append((session, response))
            if first:
                session.loop.call_later(self.window, self.pick, response["quote_id"])
            if self.answer:
                answer("OK")
        elif method == "echo":
            answer(params)
        else:
            answer(error={"code": -32601, "message": "Method not found"})
