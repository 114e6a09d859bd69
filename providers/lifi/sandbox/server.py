"""The LI.FI double's HTTP server: GET `/v1/quote`, `/v1/status`, `/v1/chains`, `/v1/tokens`
answered from a `World`, with LI.FI's rate-limit headers, its error body
(`{"message", "code"}`), 429 with `ratelimit-reset` when scripted, 503 when `world.down`."""

from __future__ import annotations

import json
import threading
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from providers.lifi.sandbox.world import DIAMOND, NATIVE, World

# LI.FI error codes (docs.li.fi "Error codes")
NOT_FOUND_ERROR = 1003
NO_QUOTE = 1002
VALIDATION_ERROR = 1011


class _Answer(Exception):
    def __init__(self, status: int, body: dict, headers: dict | None = None):
        self.status, self.body, self.headers = status, body, headers or {}


def _quote(world: World, q: dict) -> dict:
    for name in ("fromChain", "toChain", "fromToken", "toToken", "fromAddress", "fromAmount"):
        if not q.get(name):
            raise _Answer(400, {"message": f"{name} is required", "code": VALIDATION_ERROR})
    from_chain, to_chain = world.chain_id(q["fromChain"]), world.chain_id(q["toChain"])
    if from_chain is None or to_chain is None:
        raise _Answer(400, {"message": "Unknown chain", "code": VALIDATION_ERROR})
    from_token, to_token = world.token(from_chain, q["fromToken"]), world.token(to_chain, q["toToken"])
    if from_token is None or to_token is None:
        raise _Answer(404, {"message": "Unknown token", "code": NOT_FOUND_ERROR})
    try:
        amount = int(q["fromAmount"])
        slippage = Decimal(q.get("slippage") or "0.005")
    except (ValueError, InvalidOperation) as exc:
        raise _Answer(400, {"message": "fromAmount must be an integer", "code": VALIDATION_ERROR}) from exc
    if amount <= 0:
        raise _Answer(400, {"message": "fromAmount must be positive", "code": VALIDATION_ERROR})
    usd = Decimal(amount) / Decimal(10) ** from_token["decimals"] * world.price(from_token)
    if usd > world.no_route_above_usd or usd < Decimal("0.01"):
        raise _Answer(404, {"message": "No available quotes for the requested transfer", "code": NO_QUOTE})
    try:
        record = world.quote_make(
            from_chain=from_chain,
            to_chain=to_chain,
            from_token=from_token,
            to_token=to_token,
            from_address=q["fromAddress"],
            to_address=q.get("toAddress") or q["fromAddress"],
            from_amount=amount,
            slippage=slippage,
        )
    except ValueError as exc:
        raise _Answer(404, {"message": "No available quotes for the requested transfer", "code": NO_QUOTE}) from exc
    native = from_token["address"].lower() == NATIVE
    to_usd = Decimal(record.to_amount) / Decimal(10) ** to_token["decimals"] * world.price(to_token)
    tool = "stargateV2" if from_chain != to_chain else "1inch"
    return {
        "type": "lifi",
        "id": record.id,
        "tool": tool,
        "toolDetails": {"key": tool, "name": tool},
        "action": {
            "fromChainId": from_chain,
            "toChainId": to_chain,
            "fromToken": from_token,
            "toToken": to_token,
            "fromAmount": str(amount),
            "slippage": float(record.slippage),
            "fromAddress": record.from_address,
            "toAddress": record.to_address,
        },
        "estimate": {
            "tool": tool,
            "fromAmount": str(amount),
            "toAmount": str(record.to_amount),
            "toAmountMin": str(record.to_amount_min),
            "approvalAddress": DIAMOND,
            "executionDuration": 60 if from_chain != to_chain else 30,
            "fromAmountUSD": f"{usd:.2f}",
            "toAmountUSD": f"{to_usd:.2f}",
            "feeCosts": [],
            "gasCosts": [],
        },
        "includedSteps": [],
        "integrator": q.get("integrator", ""),
        "transactionRequest": {
            "from": record.from_address,
            "to": DIAMOND,
            "chainId": from_chain,
            "data": "0x" + world.calldata(record.id).hex(),
            "value": hex(amount if native else 0),
            "gasLimit": hex(400_000),
            "gasPrice": hex(2_000_000_000),
        },
    }


def _status(world: World, q: dict) -> dict:
    tx_hash = q.get("txHash") or ""
    if not tx_hash:
        raise _Answer(400, {"message": "txHash is required", "code": VALIDATION_ERROR})
    from_chain = world.chain_id(q["fromChain"]) if q.get("fromChain") else None
    transfer = world.transfer_find(tx_hash, from_chain)
    if transfer is None:
        return {"status": "NOT_FOUND", "substatus": "", "sending": {"txHash": tx_hash}}
    world.advance(transfer)
    quote = transfer.quote
    body = {
        "transactionId": "0x" + quote.id.replace("-", "").rjust(64, "0"),
        "sending": {
            "txHash": transfer.tx_hash,
            "amount": str(quote.from_amount),
            "token": quote.from_token,
            "chainId": quote.from_chain,
        },
        "receiving": {"chainId": quote.to_chain},
        "lifiExplorerLink": f"https://scan.li.fi/tx/{transfer.tx_hash}",
        "fromAddress": quote.from_address,
        "toAddress": quote.to_address,
        "tool": "stargateV2" if quote.from_chain != quote.to_chain else "1inch",
        "status": transfer.status,
        "substatus": transfer.substatus,
        "substatusMessage": {
            "WAIT_SOURCE_CONFIRMATIONS": "The bridge is waiting for additional confirmations.",
            "WAIT_DESTINATION_TRANSACTION": "The bridge is waiting for the destination transaction.",
            "COMPLETED": "The transfer is complete.",
            "PARTIAL": "The transfer was partially successful: a different token was received.",
            "REFUNDED": "The tokens were refunded to the sender address.",
        }.get(transfer.substatus, "The transfer failed."),
    }
    if transfer.receiving_tx:
        body["receiving"].update(
            {"txHash": transfer.receiving_tx, "amount": str(transfer.received_raw), "token": transfer.received_token}
        )
    return body


class _Handler(BaseHTTPRequestHandler):
    world: World  # set on the subclass

    def do_GET(self):
        url = urlparse(self.path)
        q = {k: v[-1] for k, v in parse_qs(url.query).items()}
        world = self.world
        headers = {"ratelimit-limit": "100", "ratelimit-remaining": "99", "ratelimit-reset": "60"}
        try:
            with world.lock:
                world.calls.append((url.path, q))
                if world.down:
                    raise _Answer(503, {"message": "Service unavailable", "code": 1000})
                if world.rate_limited > 0:
                    world.rate_limited -= 1
                    raise _Answer(
                        429,
                        {"message": "Too many requests", "code": 1005},
                        {"ratelimit-remaining": "0", "ratelimit-reset": f"{world.rate_limit_reset:g}"},
                    )
                if world.api_key and self.headers.get("x-lifi-api-key") != world.api_key:
                    raise _Answer(401, {"message": "Invalid API key", "code": 1010})
            if url.path == "/v1/quote":
                body = _quote(world, q)
            elif url.path == "/v1/status":
                body = _status(world, q)
            elif url.path == "/v1/chains":
                body = {"chains": world.chains}
            elif url.path == "/v1/tokens":
                wanted = {world.chain_id(c) for c in q.get("chains", "").split(",") if c} or set(world.tokens)
                body = {"tokens": {str(c): world.tokens.get(c, []) for c in wanted if c is not None}}
            else:
                raise _Answer(404, {"message": "Not found", "code": NOT_FOUND_ERROR})
            status = 200
        except _Answer as answer:
            status, body = answer.status, answer.body
            headers.update(answer.headers)
        except Exception as exc:  # the double's own failure: an answer, not a dropped connection
            status, body = 500, {"message": f"{type(exc).__name__}: {exc}"[:300], "code": 1000}
        content = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(content)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(content)

    def log_message(self, *args):
        pass


class LifiServer:
    def __init__(self, world: World, *, port: int = 0, host: str = "127.0.0.1"):
        self.world = world
        handler = type("LifiHandler", (_Handler,), {"world": world})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="lifi-sandbox", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> LifiServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
