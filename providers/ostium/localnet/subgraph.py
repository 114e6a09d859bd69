"""GraphQL subgraph served over HTTP on loopback.

A real schema (graphql-core) in The Graph's style: BigInt/BigDecimal/Bytes
scalars serialised as strings, collection fields with ``first``, ``skip``,
``where`` (``field``, ``field_not``, ``field_in``, ``field_gt`` ...),
``orderBy`` and ``orderDirection``, plus single-entity fields by ``id``."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from graphql import GraphQLScalarType, build_schema, graphql_sync

from .indexer import Indexer

log = logging.getLogger(__name__)

# entity -> [(field, graphql type)]; relation fields use the entity name
ENTITIES: dict[str, list[tuple[str, str]]] = {
    "Group": [
        ("id", "ID!"),
        ("name", "String!"),
        ("minLeverage", "BigInt!"),
        ("maxLeverage", "BigInt!"),
        ("maxCollateralP", "BigInt!"),
        ("longCollateral", "BigInt!"),
        ("shortCollateral", "BigInt!"),
    ],
    "Fee": [("id", "ID!"), ("minLevPos", "BigInt!"), ("openFeeP", "BigInt!"), ("closeFeeP", "BigInt!")],
    "Pair": [
        ("id", "ID!"),
        ("from", "String!"),
        ("to", "String!"),
        ("feed", "Bytes!"),
        ("group", "Group!"),
        ("fee", "Fee!"),
        ("minLeverage", "BigInt!"),
        ("maxLeverage", "BigInt!"),
        ("makerMaxLeverage", "BigInt!"),
        ("overnightMaxLeverage", "BigInt!"),
        ("longOI", "BigInt!"),
        ("shortOI", "BigInt!"),
        ("maxOI", "BigInt!"),
        ("makerFeeP", "BigInt!"),
        ("takerFeeP", "BigInt!"),
        ("spreadP", "BigInt!"),
        ("curFundingLong", "BigInt!"),
        ("curFundingShort", "BigInt!"),
        ("curRollover", "BigInt!"),
        ("totalOpenTrades", "BigInt!"),
        ("totalOpenLimitOrders", "BigInt!"),
        ("accRollover", "BigInt!"),
        ("lastRolloverBlock", "BigInt!"),
        ("rolloverFeePerBlock", "BigInt!"),
        ("accFundingLong", "BigInt!"),
        ("accFundingShort", "BigInt!"),
        ("lastFundingBlock", "BigInt!"),
        ("maxFundingFeePerBlock", "BigInt!"),
        ("lastFundingRate", "BigInt!"),
        ("hillInflectionPoint", "BigInt!"),
        ("hillPosScale", "BigInt!"),
        ("hillNegScale", "BigInt!"),
        ("springFactor", "BigInt!"),
        ("sFactorUpScaleP", "BigInt!"),
        ("sFactorDownScaleP", "BigInt!"),
        ("lastTradePrice", "BigInt!"),
    ],
    "Trade": [
        ("id", "ID!"),
        ("tradeID", "BigInt!"),
        ("trader", "Bytes!"),
        ("pair", "Pair!"),
        ("index", "BigInt!"),
        ("tradeType", "String!"),
        ("openPrice", "BigInt!"),
        ("closePrice", "BigInt!"),
        ("takeProfitPrice", "BigInt!"),
        ("stopLossPrice", "BigInt!"),
        ("collateral", "BigInt!"),
        ("notional", "BigInt!"),
        ("tradeNotional", "BigInt!"),
        ("highestLeverage", "BigInt!"),
        ("leverage", "BigInt!"),
        ("isBuy", "Boolean!"),
        ("isOpen", "Boolean!"),
        ("closeInitiated", "Boolean!"),
        ("funding", "BigInt!"),
        ("rollover", "BigInt!"),
        ("timestamp", "BigInt!"),
        ("isDayTrade", "Boolean!"),
    ],
    "Order": [
        ("id", "ID!"),
        ("trader", "Bytes!"),
        ("pair", "Pair!"),
        ("tradeID", "BigInt"),
        ("limitID", "String"),
        ("orderType", "String!"),
        ("orderAction", "String!"),
        ("price", "BigInt!"),
        ("priceAfterImpact", "BigInt!"),
        ("priceImpactP", "BigInt!"),
        ("collateral", "BigInt!"),
        ("notional", "BigInt!"),
        ("tradeNotional", "BigInt!"),
        ("profitPercent", "BigInt"),
        ("totalProfitPercent", "BigInt"),
        ("amountSentToTrader", "BigInt"),
        ("isBuy", "Boolean!"),
        ("leverage", "BigInt!"),
        ("initiatedAt", "BigInt!"),
        ("initiatedTx", "Bytes!"),
        ("initiatedBlock", "BigInt!"),
        ("executedAt", "BigInt"),
        ("executedTx", "Bytes"),
        ("executedBlock", "BigInt"),
        ("isPending", "Boolean!"),
        ("isCancelled", "Boolean!"),
        ("cancelReason", "String"),
        ("devFee", "BigInt!"),
        ("vaultFee", "BigInt!"),
        ("oracleFee", "BigInt!"),
        ("liquidationFee", "BigInt!"),
        ("fundingFee", "BigInt!"),
        ("rolloverFee", "BigInt!"),
        ("closePercent", "BigInt"),
    ],
    # Only the fields Ostium's SDK and public clients read: nothing more is known of the real
    # subgraph's Limit, so nothing more is offered (Tradedesk reads a limit's life from the chain).
    "Limit": [
        ("id", "ID!"),
        ("trader", "Bytes!"),
        ("pair", "Pair!"),
        ("collateral", "BigInt!"),
        ("leverage", "BigInt!"),
        ("isBuy", "Boolean!"),
        ("isActive", "Boolean!"),
        ("openPrice", "BigInt!"),
        ("takeProfitPrice", "BigInt!"),
        ("stopLossPrice", "BigInt!"),
        ("initiatedAt", "BigInt!"),
        ("updatedAt", "BigInt!"),
        ("limitType", "String!"),
    ],
    "MetaData": [
        ("id", "ID!"),
        ("liqMarginThresholdP", "BigInt!"),
        ("liqThresholdP", "BigInt!"),
        ("maxNegativePnlOnOpenP", "BigInt!"),
        ("totalOpenTrades", "BigInt!"),
        ("totalOpenLimitOrders", "BigInt!"),
    ],
}
# GraphQL query field names (plural, single)
COLLECTIONS = {
    "Group": ("groups", "group"),
    "Fee": ("fees", "fee"),
    "Pair": ("pairs", "pair"),
    "Trade": ("trades", "trade"),
    "Order": ("orders", "order"),
    "Limit": ("limits", "limit"),
    "MetaData": ("metaDatas", "metaData"),
}
SCALARS = {"ID", "String", "BigInt", "BigDecimal", "Bytes", "Boolean", "Int"}
NUMERIC = {"BigInt", "BigDecimal", "Int"}


def _base(gql_type: str) -> str:
    return gql_type.rstrip("!")


def build_sdl() -> str:
    parts = [
        "scalar BigInt",
        "scalar BigDecimal",
        "scalar Bytes",
        "enum OrderDirection { asc desc }",
    ]
    query_fields = []
    for entity, fields in ENTITIES.items():
        parts.append(f"type {entity} {{\n" + "\n".join(f"  {n}: {t}" for n, t in fields) + "\n}")
        filters = []
        for name, gql_type in fields:
            base = _base(gql_type)
            if base not in SCALARS:
                base = "String"  # relation filtered by id
            filters += [f"{name}: {base}", f"{name}_not: {base}", f"{name}_in: [{base}!]", f"{name}_not_in: [{base}!]"]
            if base in NUMERIC or base in ("ID", "String"):
                filters += [f"{name}_{op}: {base}" for op in ("gt", "gte", "lt", "lte")]
        parts.append(f"input {entity}_filter {{\n  " + "\n  ".join(filters) + "\n}")
        parts.append(f"enum {entity}_orderBy {{ " + " ".join(n for n, _ in fields) + " }")
        plural, single = COLLECTIONS[entity]
        query_fields.append(
            f"  {plural}(skip: Int = 0, first: Int = 100, orderBy: {entity}_orderBy, "
            f"orderDirection: OrderDirection, where: {entity}_filter, block: Block_height): [{entity}!]!"
        )
        query_fields.append(f"  {single}(id: ID!, block: Block_height): {entity}")
    parts.append("input Block_height { hash: Bytes number: Int number_gte: Int }")
    parts.append("type _Meta_ { block: _Block_! hasIndexingErrors: Boolean! deployment: String! }")
    parts.append("type _Block_ { number: Int! hash: Bytes timestamp: Int }")
    query_fields.append("  _meta(block: Block_height): _Meta_")
    parts.append("type Query {\n" + "\n".join(query_fields) + "\n}")
    return "\n\n".join(parts)


def _serialize_big(value):
    return str(int(value))


def _parse_big(value):
    return int(value)


def _serialize_bytes(value):
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    return str(value).lower()


def _parse_bytes(value):
    return str(value).lower()


def _comparable(value):
    if isinstance(value, dict):  # relation
        return _comparable(str(value.get("id")))
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        if value.lstrip("-").isdigit():
            return int(value)
        return value.lower()
    return value


def _matches(entity: dict, where: dict) -> bool:
    for key, expected in where.items():
        for op in ("_not_in", "_in", "_not", "_gte", "_lte", "_gt", "_lt"):
            if key.endswith(op):
                field = key[: -len(op)]
                break
        else:
            field, op = key, ""
        actual = _comparable(entity.get(field))
        expected = [_comparable(e) for e in expected] if isinstance(expected, list) else _comparable(expected)
        try:
            if op == "" and actual != expected:
                return False
            if op == "_not" and actual == expected:
                return False
            if op == "_in" and actual not in expected:
                return False
            if op == "_not_in" and actual in expected:
                return False
            if op == "_gt" and not (actual is not None and actual > expected):
                return False
            if op == "_gte" and not (actual is not None and actual >= expected):
                return False
            if op == "_lt" and not (actual is not None and actual < expected):
                return False
            if op == "_lte" and not (actual is not None and actual <= expected):
                return False
        except TypeError:
            return False
    return True


def _sort_key(value):
    value = _comparable(value)
    if value is None:
        return (1, 0)
    if isinstance(value, (int, float)):
        return (0, value)
    return (0, str(value))


class SubgraphSchema:
    def __init__(self, indexer: Indexer):
        self.indexer = indexer
        self.schema = build_schema(build_sdl())
        big = self.schema.type_map["BigInt"]
        assert isinstance(big, GraphQLScalarType)
        big.serialize = _serialize_big
        big.parse_value = _parse_big
        dec = self.schema.type_map["BigDecimal"]
        dec.serialize = str
        dec.parse_value = str
        byt = self.schema.type_map["Bytes"]
        byt.serialize = _serialize_bytes
        byt.parse_value = _parse_bytes

    def _collection(self, entity: str) -> list[dict]:
        ix = self.indexer
        return list(
            {
                "Group": ix.groups,
                "Fee": {p["id"]: p["fee"] for p in ix.pairs.values()},
                "Pair": ix.pairs,
                "Trade": ix.trades,
                "Order": ix.orders,
                "Limit": ix.limits,
                "MetaData": {"1": ix.meta},
            }[entity].values()
        )

    def _root(self) -> dict:
        root = {}
        for entity, (plural, single) in COLLECTIONS.items():

            def many(info, entity=entity, skip=0, first=100, orderBy=None, orderDirection=None, where=None, block=None):
                items = [(seq, e) for seq, e in enumerate(self._collection(entity)) if _matches(e, where or {})]
                key = orderBy or "id"
                # ties keep indexing order (reversed for desc), like block/log order
                items.sort(key=lambda x: (_sort_key(x[1].get(key)), x[0]), reverse=(orderDirection == "desc"))
                return [e for _, e in items[skip : skip + min(first, 1000)]]

            def one(info, id, entity=entity, block=None):
                for e in self._collection(entity):
                    if str(e.get("id")).lower() == str(id).lower():
                        return e
                return None

            root[plural] = many
            root[single] = one

        def meta(info, block=None):
            return {
                "block": {"number": self.indexer.last_block, "hash": self.indexer.last_hash, "timestamp": None},
                "hasIndexingErrors": False,
                "deployment": "ostium-localnet",
            }

        root["_meta"] = meta
        return root

    def execute(self, query: str, variables: dict | None = None, operation_name: str | None = None) -> dict:
        with self.indexer._lock:
            self.indexer.sync()
            result = graphql_sync(
                self.schema, query, root_value=self._root(), variable_values=variables, operation_name=operation_name
            )
            out: dict = {"data": result.data}
            if result.errors:
                out["errors"] = [e.formatted for e in result.errors]
            return out


class _Handler(BaseHTTPRequestHandler):
    server_version = "OstiumLocalnetSubgraph/1.0"
    schema: SubgraphSchema

    def log_message(self, fmt, *args):  # quiet
        log.debug("subgraph: " + fmt, *args)

    def _reply(self, status: int, payload: dict) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        try:
            length = int(self.headers.get("Content-Length") or 0)
            request = json.loads(self.rfile.read(length) or b"{}")
            result = self.server.schema.execute(
                request.get("query", ""), request.get("variables"), request.get("operationName")
            )
            self._reply(200, result)
        except Exception as exc:  # report as GraphQL error
            log.exception("subgraph request failed")
            self._reply(200, {"data": None, "errors": [{"message": str(exc)}]})

    def do_GET(self):
        self._reply(200, {"status": "ok", "block": self.server.schema.indexer.last_block})


class SubgraphServer:
    def __init__(self, indexer: Indexer, host: str = "127.0.0.1", port: int = 0):
        self.schema = SubgraphSchema(indexer)
        self.httpd = ThreadingHTTPServer((host, port), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.schema = self.schema
        self.host, self.port = self.httpd.server_address[:2]
        self.url = f"http://{self.host}:{self.port}/subgraphs/name/ostium-localnet"
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="ostium-subgraph", daemon=True)

    def start(self) -> SubgraphServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
