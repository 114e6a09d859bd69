"""The three doubles' wire protocols over one `World`:

- NEAR RPC: `query` with `request_type: call_function` on the verifier (view methods), answered
  as a node does (`result.result` = the JSON's bytes, `block_height`, `block_hash`) and failing
  as a node does (HANDLER_ERROR with cause UNKNOWN_ACCOUNT / CONTRACT_EXECUTION_ERROR).
- The bridge service: `supported_tokens`, `deposit_address`, `recent_deposits`,
  `withdrawal_status` (params as a one-element list).
- The relay: `publish_intent`, `get_status` over HTTP POST; the solvers' websocket (`/ws`:
  `subscribe`, quote and quote_status events, `quote_response`) in `relay_ws.RelayHub`."""

from __future__ import annotations

import base64
import hashlib
import json

import base58

from providers.near_intents.sandbox.server import JsonRpcApp, RpcFault, Slow


def _node_error(cause: str, data: str) -> RpcFault:
    return RpcFault(
        {"name": "HANDLER_ERROR", "cause": {"name": cause}, "code": -32000, "message": "Server error", "data": data}
    )


class NearRpcApp(JsonRpcApp):
    name = "rpc"
    params_as_list = False

    def methods(self):
        return {"query": self.query}

    def query(self, params: dict):
        world = self.world
        world.calls.append(("rpc", str(params.get("method_name", params.get("request_type")))))
        if params.get("request_type") != "call_function":
            raise _node_error("PARSE_ERROR", f"unsupported request_type {params.get('request_type')!r}")
        if params.get("account_id") != world.verifier:
            raise _node_error("UNKNOWN_ACCOUNT", f"account {params.get('account_id')} does not exist while viewing")
        try:
            args = json.loads(base64.b64decode(params.get("args_base64") or "") or b"{}")
        except ValueError:
            raise _node_error("CONTRACT_EXECUTION_ERROR", "wasm execution failed: invalid JSON args") from None
        try:
            value = world.view(params.get("method_name", ""), args)
        except KeyError:
            raise _node_error(
                "CONTRACT_EXECUTION_ERROR", "wasm execution failed with error: MethodResolveError(MethodNotFound)"
            ) from None
        except (TypeError, ValueError) as exc:
            raise _node_error("CONTRACT_EXECUTION_ERROR", f"wasm execution failed: {exc}") from None
        height = world.block_height
        return {
            "result": list(json.dumps(value).encode()),
            "logs": [],
            "block_height": height,
            "block_hash": base58.b58encode(hashlib.sha256(str(height).encode()).digest()).decode(),
        }


class BridgeApp(JsonRpcApp):
    name = "bridge"

    def methods(self):
        return {
            "supported_tokens": self.supported_tokens,
            "deposit_address": self.deposit_address,
            "recent_deposits": self.recent_deposits,
            "withdrawal_status": self.withdrawal_status,
        }

    def supported_tokens(self, params: dict):
        self.world.calls.append(("bridge", "supported_tokens"))
        chains = params.get("chains") or None
        with self.world.lock:
            tokens = [t.as_bridge() for t in self.world.tokens.values() if not chains or t.chain in chains]
        return {"tokens": tokens}

    def deposit_address(self, params: dict):
        world = self.world
        world.calls.append(("bridge", "deposit_address"))
        account, chain = params.get("account_id", ""), params.get("chain", "")
        with world.lock:
            if not any(t.chain == chain for t in world.tokens.values()):
                raise RpcFault(f"chain {chain} is not supported")
            key = (account, chain)
            if key not in world.deposit_addresses:
                digest = hashlib.sha256(f"{account}:{chain}".encode()).hexdigest()
                world.deposit_addresses[key] = "0x" + digest[:40] if chain.startswith("eth:") else "bc1q" + digest[:38]
            return {"address": world.deposit_addresses[key], "chain": chain}

    def recent_deposits(self, params: dict):
        world = self.world
        world.calls.append(("bridge", "recent_deposits"))
        account, chain = params.get("account_id", ""), params.get("chain")
        with world.lock:
            world.tick()
            deposits = [
                d.as_bridge(world.tokens.get(d.token_id))
                for d in world.deposits
                if d.account_id == account and (not chain or d.chain == chain)
            ]
        return {"deposits": deposits, "total": len(deposits)}

    def withdrawal_status(self, params: dict):
        world = self.world
        world.calls.append(("bridge", "withdrawal_status"))
        with world.lock:
            world.tick()
            w = world.withdrawals.get(params.get("withdrawal_hash", ""))
            if w is None:
                return {"withdrawals": []}
            token = world.tokens.get(w["token_id"])
            return {
                "withdrawals": [
                    {
                        "status": w["status"],
                        "data": {
                            "tx_hash": params["withdrawal_hash"],
                            "transfer_tx_hash": w["transfer_tx_hash"] or None,
                            "chain": token.chain if token else "",
                            "near_token_id": w["token_id"].removeprefix("nep141:"),
                            "decimals": token.decimals if token else 0,
                            "amount": w["amount"],
                            "account_id": w["account_id"],
                            "address": w["address"],
                        },
                    }
                ]
            }


class RelayApp(JsonRpcApp):
    name = "relay"

    def methods(self):
        return {"publish_intent": self.publish_intent, "get_status": self.get_status}

    def publish_intent(self, params: dict):
        self.world.calls.append(("relay", "publish_intent"))
        answer = self.world.publish(params.get("signed_data") or {})
        if self.world.publish_delay:
            return Slow(self.world.publish_delay, answer)
        return answer

    def get_status(self, params: dict):
        self.world.calls.append(("relay", "get_status"))
        return self.world.status(params.get("intent_hash", ""))

    async def websocket(self, scope, receive, send):
        await self.world.relay.websocket(scope, receive, send)
