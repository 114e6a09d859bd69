"""Ostium as a `providers.interface.VenueAdapter` (registered as "ostium").

Direct mode: the desk's own trader key (OSTIUM_TRADER_KEY_FILE) trades for its own address;
orders whose `account` is "user:<id>" or that address use it. Delegated mode
(`delegated=True` and `account` another address, e.g. a Safe): the delegate key
(OSTIUM_DELEGATE_KEY_FILE, default the trader key) acts through `delegatedAction`.

Market orders are two-phase: `open_trade` / `close_trade` return PENDING with Ostium's order
id; limit/stop opens return PENDING with `limit:<tx hash>` and rest in a (trader, pair, index)
slot until a keeper triggers them. `providers.ostium.sync.ostium_sync` (Beat) polls both and
emits VenueEvents (ORDER_FILLED / ORDER_CANCELLED / POSITION_CLOSED / POSITION_LIQUIDATED). Every command is
recorded in `OstiumOrder` before its transaction is sent, so an unknown outcome is resolved
from the chain (`get_order_status`) and never submitted twice.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from configuration.runtime import provider_enabled
from providers.interface import (
    CloseTradeRequest,
    ErrorCode,
    ExecStatus,
    ExecutionResult,
    Fill,
    Market,
    OpenTradeRequest,
    PriceTick,
    Side,
    VenueError,
    VenueException,
    VenueOrderKind,
    VenuePosition,
)
from providers.ostium import errors as E
from providers.ostium.config import OstiumConfigError, OstiumNetwork, network_config
from providers.ostium.resilience import breaker_allow, breaker_record, guarded_read

logger = logging.getLogger("tradedesk.providers.ostium")

C = ErrorCode
E18 = Decimal(10) ** 18
E6 = Decimal(10) ** 6
E2 = Decimal(100)
CATEGORIES = {"crypto": "crypto", "forex": "forex", "fx": "forex", "commodities": "commodity", "commodity": "commodity"}
CATEGORIES |= {"indices": "index", "index": "index", "stocks": "stock", "stock": "stock"}


def _d(value, scale: Decimal = Decimal(1)) -> Decimal:
    if value is None or value == "":
        return Decimal(0)
    return Decimal(str(value)) / scale


def _read_key(path: str) -> str:
    if not path:
        return ""
    text = Path(path).read_text(encoding="utf-8").strip()
    if text and not text.startswith("0x"):
        text = "0x" + text
    return text


class OstiumVenue:
    name = "ostium"

    def __init__(self, network: str | None = None):
        self._network_name = network
        self._net: OstiumNetwork | None = None
        self._pairs: tuple[float, list[dict]] | None = None
        self._lock = threading.Lock()

    # --- plumbing ---------------------------------------------------------------------------
    @property
    def net(self) -> OstiumNetwork:
        """The network this adapter trades on; a network that is not configured (no localnet
        config file, a bad address) is VenueException(NETWORK_NOT_CONFIGURED)."""
        if self._net is None:
            try:
                self._net = network_config(self._network_name)
            except OstiumConfigError as exc:
                raise VenueException(E.error(C.NETWORK_NOT_CONFIGURED, str(exc), retryable=False)) from None
        return self._net

    def _trader_key(self) -> str:
        key = _read_key(settings.OSTIUM_TRADER_KEY_FILE)
        if not key:
            raise VenueException(E.error(C.INVALID_REQUEST, "no Ostium trader key configured (OSTIUM_TRADER_KEY_FILE)"))
        return key

    def _delegate_key(self, trader: str = "") -> str:
        """The delegate acting for `trader`: the registered source's key (Tradedesk's custody
        store, see providers.ostium.signer_keys), else OSTIUM_DELEGATE_KEY_FILE, else the trader key."""
        from providers.ostium.signer_keys import delegate_key_for

        return (
            (delegate_key_for(self.net.name, trader) if trader else None)
            or _read_key(settings.OSTIUM_DELEGATE_KEY_FILE)
            or self._trader_key()
        )

    def _client(self, *, delegated: bool = False, trader: str = ""):
        from providers.ostium.client import client_for

        if delegated:
            return client_for(self.net, self._delegate_key(trader), use_delegation=True)
        return client_for(self.net, self._trader_key())

    def trader_address(self) -> str:
        return self._client().address

    def delegate_address(self, trader: str) -> str:
        """The address this adapter acts through for `trader` in delegated mode."""
        return self._client(delegated=True, trader=trader).address

    def _mode(self, account: str, delegated: bool):
        """(client, trader address, delegated?) for an account."""
        direct = self._client()
        if not account or account.startswith("user:") or account.lower() == direct.address.lower():
            return direct, direct.address, False
        from web3 import Web3

        if not Web3.is_address(account):
            raise VenueException(E.error(C.INVALID_REQUEST, f"not an address: {account!r}"))
        if not delegated:  # never trade from our own account for someone else's
            raise VenueException(
                E.error(
                    C.DELEGATE_NOT_SET,
                    f"{account} is not this signer's own account ({direct.address}): act for it through a delegation",
                    trader=account,
                )
            )
        trader = Web3.to_checksum_address(account)
        return self._client(delegated=True, trader=trader), trader, True

    def _read(self, fn, *, during: str):
        """A read through the breaker with bounded retries; failures as VenueException."""
        return guarded_read(self.net.name, fn, during=during)

    def _refuse_writes(self) -> VenueError | None:
        if not provider_enabled("ostium"):
            return E.error(C.VENUE_DISABLED, "Ostium writes are disabled (OSTIUM_ENABLED=false)")
        if not breaker_allow(self.net.name):
            return E.error(C.CIRCUIT_OPEN, f"Ostium {self.net.name} circuit open", retryable=True)
        return None

    def _mainnet_guard(self, trader: str, notional: Decimal | None) -> VenueError | None:
        if not self.net.is_mainnet:
            return None
        allow = {a.strip().lower() for a in settings.OSTIUM_MAINNET_TRADER_ALLOWLIST if a.strip()}
        if trader.lower() not in allow:
            return E.error(C.VENUE_DISABLED, "mainnet writes are allowed only for allowlisted traders", trader=trader)
        cap = Decimal(str(settings.OSTIUM_MAINNET_MAX_NOTIONAL))
        if notional is not None and notional > cap:
            return E.error(C.INVALID_REQUEST, f"notional {notional} above the mainnet cap {cap}", cap=str(cap))
        return None

    # --- markets and prices -----------------------------------------------------------------
    def _pair_rows(self) -> list[dict]:
        with self._lock:
            if self._pairs and time.monotonic() - self._pairs[0] < 60:
                return self._pairs[1]
        from providers.ostium.client import http_pairs

        rows = self._read(lambda: http_pairs(self.net), during="pairs")
        with self._lock:
            self._pairs = (time.monotonic(), rows)
        return rows

    def _pair_for(self, symbol: str) -> dict:
        symbol = symbol.strip().upper()
        for row in self._pair_rows():
            if f"{row['from']}-{row['to']}".upper() == symbol:
                return row
        raise VenueException(E.error(C.INVALID_MARKET, f"no Ostium market {symbol}", symbol=symbol))

    def symbol_of(self, pair_id) -> str:
        """The symbol of Ostium's pair `pair_id` ("" when there is none)."""
        for row in self._pair_rows():
            if str(row["id"]) == str(pair_id):
                return f"{row['from']}-{row['to']}".upper()
        return ""

    def get_pairs(self) -> list[Market]:
        quotes = {}
        with contextlib.suppress(VenueException):
            quotes = {q["symbol"]: q for q in self._quotes()}
        out = []
        for row in self._pair_rows():
            symbol = f"{row['from']}-{row['to']}".upper()
            group = (row.get("group") or {}).get("name", "") or ""
            out.append(
                Market(
                    symbol=symbol,
                    pair_id=str(row["id"]),
                    category=CATEGORIES.get(group.lower(), group.lower() or "crypto"),
                    max_leverage=_d(row.get("maxLeverage") or (row.get("group") or {}).get("maxLeverage"), E2),
                    min_leverage=_d((row.get("group") or {}).get("minLeverage") or 100, E2),
                    taker_fee_rate=_d(row.get("takerFeeP"), E6 * E2),
                    maker_fee_rate=_d(row.get("makerFeeP"), E6 * E2),
                    is_open=bool(quotes.get(symbol, {}).get("isMarketOpen", True)),
                )
            )
        return out

    def _quotes(self) -> list[dict]:
        from providers.ostium.client import http_latest_prices

        rows = self._read(lambda: http_latest_prices(self.net), during="prices")
        for row in rows:
            row["symbol"] = f"{row.get('from')}-{row.get('to')}".upper()
        return rows

    def _tick(self, row: dict) -> PriceTick:
        ts = row.get("timestampSeconds")
        when = datetime.fromtimestamp(int(ts), tz=UTC) if ts else timezone.now()
        return PriceTick(
            symbol=row["symbol"],
            price=Decimal(str(row["mid"])),
            timestamp=when,
            source="ostium",
            venue="ostium",
            bid=Decimal(str(row["bid"])) if row.get("bid") is not None else None,
            ask=Decimal(str(row["ask"])) if row.get("ask") is not None else None,
        )

    def _quote(self, symbol: str) -> dict:
        symbol = symbol.strip().upper()
        for row in self._quotes():
            if row["symbol"] == symbol:
                return row
        raise VenueException(E.error(C.PRICE_UNAVAILABLE, f"no Ostium price for {symbol}", symbol=symbol))

    def get_price(self, symbol: str) -> PriceTick:
        return self._tick(self._quote(symbol))

    def quote(self, symbol: str) -> tuple[PriceTick, bool]:
        """(price, is the market open) of a market Ostium lists; another is INVALID_MARKET."""
        self._pair_for(symbol)
        row = self._quote(symbol)
        return self._tick(row), bool(row.get("isMarketOpen", True))

    def get_prices(self, symbols: list[str]) -> dict[str, PriceTick]:
        wanted = {s.strip().upper() for s in symbols}
        return {r["symbol"]: self._tick(r) for r in self._quotes() if r["symbol"] in wanted}

    def get_balances(self, *, account: str) -> dict[str, Decimal]:
        client, trader, _ = self._mode(account, delegated=True)
        usdc = self._read(lambda: client.usdc_balance(trader), during="balance")
        eth = self._read(lambda: client.eth_balance(trader), during="balance")
        return {"USDC": _d(usdc, E6), "ETH": _d(eth, E18)}

    # --- writes -----------------------------------------------------------------------------
    def _record(self, **values):
        from providers.models import OstiumOrder

        return OstiumOrder.objects.create(network=self.net.name, **values)

    def _rejected(self, error: VenueError, **raw) -> ExecutionResult:
        return ExecutionResult(status=ExecStatus.REJECTED, error=error, raw_request=raw)

    def _send(self, row, client, name: str, fn) -> ExecutionResult:
        """Send one recorded write; map its outcome onto the row and an ExecutionResult."""
        from providers.ostium.client import WriteTimeout

        def before_send(nonce: int, from_block: int) -> None:
            # written ahead: a worker killed mid-write leaves the nonce reconciliation looks for
            row.nonce, row.from_block = nonce, from_block
            type(row).objects.filter(pk=row.pk).update(nonce=nonce, from_block=from_block)

        try:
            outcome = client.write(name, fn, before_send=before_send)
        except Exception as exc:
            error = E.error_from_exception(exc, during=name)
            if isinstance(exc, WriteTimeout):
                row.nonce, row.from_block = exc.nonce, exc.from_block
                row.status, row.error_code = row.Status.UNKNOWN, error.code
                row.save(update_fields=["nonce", "from_block", "status", "error_code", "updated_at"])
                return ExecutionResult(status=ExecStatus.UNKNOWN, error=error, pair_id=row.pair_id)
            if error.code in E.INFRA_CODES:
                breaker_record(self.net.name, ok=False)
                if error.code == C.RPC_TIMEOUT:
                    row.status, row.error_code = row.Status.UNKNOWN, C.UNKNOWN_OUTCOME
                    row.save(update_fields=["status", "error_code", "updated_at"])
                    return ExecutionResult(status=ExecStatus.UNKNOWN, error=error, pair_id=row.pair_id)
            row.status, row.error_code = row.Status.FAILED, error.code
            row.result = {"error": {"code": error.code, "message": error.message, "details": _jsonable(error.details)}}
            row.tx_hash = str(error.details.get("transaction_hash", ""))[:66]
            row.save(update_fields=["status", "error_code", "result", "tx_hash", "updated_at"])
            return ExecutionResult(
                status=ExecStatus.REJECTED, error=error, pair_id=row.pair_id, transaction_hash=row.tx_hash
            )
        breaker_record(self.net.name, ok=True)
        row.tx_hash, row.nonce, row.from_block = outcome.tx_hash, outcome.nonce, outcome.from_block
        row.venue_order_id = outcome.order_id
        self._note_limit(row, client, outcome.receipt)
        row.status = row.Status.PENDING if row.action in ("open", "close") else row.Status.EXECUTED
        row.save(update_fields=["tx_hash", "nonce", "from_block", "venue_order_id", "status", "result", "updated_at"])
        return ExecutionResult(
            status=ExecStatus.PENDING if row.action in ("open", "close") else ExecStatus.FILLED,
            venue_order_id=row.venue_order_id,
            pair_id=row.pair_id,
            trade_index=row.trade_index,
            transaction_hash=row.tx_hash,
            raw_response={
                "order_id": row.venue_order_id,
                "tx_hash": row.tx_hash,
                "block": outcome.receipt.get("blockNumber"),
            },
        )

    def _existing(self, key: str) -> ExecutionResult | None:
        from providers.models import OstiumOrder

        if OstiumOrder.objects.filter(idempotency_key=key).exists():
            return self.get_order_status(idempotency_key=key)
        return None

    def open_trade(self, request: OpenTradeRequest) -> ExecutionResult:
        raw = {
            "symbol": request.symbol,
            "side": str(request.side),
            "collateral": str(request.collateral),
            "leverage": str(request.leverage),
            "account": request.account,
            "delegated": request.delegated,
        }
        refused = self._refuse_writes()
        if refused:
            return self._rejected(refused, **raw)
        existing = self._existing(request.idempotency_key)
        if existing is not None:
            return existing
        try:
            client, trader, delegated = self._mode(request.account, request.delegated)
            guard = self._mainnet_guard(trader, request.collateral * request.leverage)
            if guard:
                return self._rejected(guard, **raw)
            pair = self._pair_for(request.symbol)
            quote = self._quote(request.symbol)
            if not quote.get("isMarketOpen", True):
                return self._rejected(E.error(C.MARKET_CLOSED, f"{request.symbol} market is closed"), **raw)
            problem = self._preflight(client, trader, delegated, collateral=request.collateral)
            if problem:
                return self._rejected(problem, **raw)
        except VenueException as exc:
            return self._rejected(exc.error, **raw)
        price = Decimal(str(quote["mid"]))
        at_price = {
            VenueOrderKind.MARKET: price,
            VenueOrderKind.LIMIT: request.limit_price,
            VenueOrderKind.STOP: request.stop_price,
        }[VenueOrderKind(request.kind)]
        params = {
            "collateral": request.collateral,
            "leverage": request.leverage,
            "asset_type": int(pair["id"]),
            "direction": Side(request.side) == Side.LONG,
            "order_type": VenueOrderKind(request.kind).value.upper(),
        }
        if request.take_profit is not None:
            params["tp"] = str(request.take_profit)
        if request.stop_loss is not None:
            params["sl"] = str(request.stop_loss)
        if delegated:
            params["trader_address"] = trader
        row = self._record(
            idempotency_key=request.idempotency_key,
            action="open",
            account=trader,
            signer=client.address,
            delegated=delegated,
            symbol=request.symbol.upper(),
            pair_id=str(pair["id"]),
            order_type=VenueOrderKind(request.kind).value,
            side=str(request.side),
            collateral=request.collateral,
            leverage=request.leverage,
            reference_price=request.reference_price or price,
        )
        slippage = request.max_slippage * 100

        def write(sdk):
            sdk.ostium.set_slippage_percentage(slippage)
            return sdk.ostium.perform_trade(params, at_price=at_price)

        result = self._send(row, client, "open", write)
        return ExecutionResult(**{**result.__dict__, "raw_request": raw | {"at_price": str(at_price)}})

    @staticmethod
    def _note_limit(row, client, receipt) -> None:
        """A limit/stop open rests at the venue as (trader, pair, index) until its price: keep
        that slot and the placing block (the slot is reused once the limit is gone); our venue
        order id is `limit:<placing tx>`. Only for a limit/stop open the venue gave no order id;
        the caller saves the row."""
        if row.action != "open" or row.order_type == "market" or row.venue_order_id:
            return
        placed = client.limit_placed(receipt)
        row.venue_order_id = f"limit:{row.tx_hash}"
        if placed is not None:
            pair_id, index = placed
            row.result = {**row.result, "limit": {"pair_id": pair_id, "index": index, "block": receipt["blockNumber"]}}

    def _preflight(self, client, trader: str, delegated: bool, *, collateral: Decimal | None) -> VenueError | None:
        if delegated:
            delegate = self._read(lambda: client.delegate_of(trader), during="delegations")
            if delegate.lower() != client.address.lower():
                return E.error(C.DELEGATE_NOT_SET, f"{trader} has not delegated to {client.address}", trader=trader)
        if collateral is not None:
            units = int(collateral * E6)
            balance = self._read(lambda: client.usdc_balance(trader), during="balance")
            if balance < units:
                return E.error(C.INSUFFICIENT_BALANCE, f"USDC balance {_d(balance, E6)} below collateral {collateral}")
            if delegated:
                allowance = self._read(lambda: client.allowance(trader), during="allowance")
                if allowance < units:
                    return E.error(C.INSUFFICIENT_ALLOWANCE, f"{trader} has not approved {collateral} USDC to Ostium")
        gas = self._read(lambda: client.eth_balance(client.address), during="gas")
        if gas <= 0:
            return E.error(C.INSUFFICIENT_GAS, f"signer {client.address} has no ETH for gas")
        return None

    def _open_trade_row(self, client, trader: str, pair_id: str, trade_index: str) -> dict | None:
        rows = self._read(lambda: client.open_trades(trader), during="open_trades")
        for row in rows:
            if str(row["pair"]["id"]) == str(pair_id) and str(row["index"]) == str(trade_index):
                return row
        return None

    def close_trade(self, request: CloseTradeRequest) -> ExecutionResult:
        raw = {
            "symbol": request.symbol,
            "pair_id": request.pair_id,
            "trade_index": request.trade_index,
            "fraction": str(request.fraction),
            "account": request.account,
        }
        refused = self._refuse_writes()
        if refused:
            return self._rejected(refused, **raw)
        existing = self._existing(request.idempotency_key)
        if existing is not None:
            return existing
        try:
            client, trader, delegated = self._mode(request.account, request.delegated)
            guard = self._mainnet_guard(trader, None)
            if guard:
                return self._rejected(guard, **raw)
            trade = self._open_trade_row(client, trader, request.pair_id, request.trade_index)
            if trade is None:
                return self._rejected(
                    E.error(C.POSITION_NOT_FOUND, f"no open Ostium trade {request.pair_id}/{request.trade_index}"),
                    **raw,
                )
            symbol = self.symbol_of(request.pair_id) or request.symbol
            quote = self._quote(symbol)
            if not quote.get("isMarketOpen", True):
                return self._rejected(E.error(C.MARKET_CLOSED, f"{symbol} market is closed"), **raw)
            problem = self._preflight(client, trader, delegated, collateral=None)
            if problem:
                return self._rejected(problem, **raw)
        except VenueException as exc:
            return self._rejected(exc.error, **raw)
        fraction = min(max(request.fraction, Decimal("0.01")), Decimal(1))
        price = Decimal(str(quote["mid"]))
        row = self._record(
            idempotency_key=request.idempotency_key,
            action="close",
            account=trader,
            signer=client.address,
            delegated=delegated,
            symbol=symbol,
            pair_id=str(request.pair_id),
            trade_index=str(request.trade_index),
            side="long" if trade["isBuy"] else "short",
            collateral=_d(trade["collateral"], E6) * fraction,
            leverage=_d(trade["leverage"], E2),
            fraction=fraction,
            size=_d(trade["tradeNotional"], E18) * fraction,
            reference_price=price,
            trade_id=str(trade.get("tradeID") or ""),
        )
        slippage = request.max_slippage * 100
        percentage = (fraction * 100).quantize(Decimal("0.01"))

        def write(sdk):
            sdk.ostium.set_slippage_percentage(slippage)
            return sdk.ostium.close_trade(
                int(request.pair_id),
                int(request.trade_index),
                market_price=price,
                close_percentage=percentage,
                trader_address=trader if delegated else None,
            )

        result = self._send(row, client, "close", write)
        return ExecutionResult(**{**result.__dict__, "raw_request": raw | {"market_price": str(price)}})

    def _update(self, which: str, *, account, pair_id, trade_index, price, delegated) -> ExecutionResult:
        raw = {"account": account, "pair_id": pair_id, "trade_index": trade_index, which: str(price)}
        refused = self._refuse_writes()
        if refused:
            return self._rejected(refused, **raw)
        try:
            client, trader, delegated = self._mode(account, delegated)
            guard = self._mainnet_guard(trader, None)
            if guard:
                return self._rejected(guard, **raw)
            if self._open_trade_row(client, trader, pair_id, trade_index) is None:
                return self._rejected(
                    E.error(C.POSITION_NOT_FOUND, f"no open Ostium trade {pair_id}/{trade_index}"), **raw
                )
        except VenueException as exc:
            return self._rejected(exc.error, **raw)
        level = price if price is not None else 0
        key = f"{which}:{pair_id}:{trade_index}:{level}:{time.time_ns()}"
        row = self._record(
            idempotency_key=key[:120],
            action=which,
            account=trader,
            signer=client.address,
            delegated=delegated,
            symbol=self.symbol_of(pair_id),
            pair_id=str(pair_id),
            trade_index=str(trade_index),
            reference_price=price,
        )
        who = trader if delegated else None

        def write(sdk):
            if which == "update_sl":
                return sdk.ostium.update_sl(int(pair_id), int(trade_index), level, trader_address=who)
            return sdk.ostium.update_tp(int(pair_id), int(trade_index), level, trader_address=who)

        result = self._send(row, client, which, write)
        return ExecutionResult(**{**result.__dict__, "raw_request": raw})

    def update_sl(self, *, account, pair_id, trade_index, price, delegated=False) -> ExecutionResult:
        return self._update(
            "update_sl", account=account, pair_id=pair_id, trade_index=trade_index, price=price, delegated=delegated
        )

    def update_tp(self, *, account, pair_id, trade_index, price, delegated=False) -> ExecutionResult:
        return self._update(
            "update_tp", account=account, pair_id=pair_id, trade_index=trade_index, price=price, delegated=delegated
        )

    def cancel_order(self, *, account: str, venue_order_id: str, delegated: bool = False) -> ExecutionResult:
        """Cancel a resting limit/stop open (`cancelOpenLimitOrder` on its slot), or time out a
        market order the keeper never answered (`openTradeMarketTimeout` returns the
        collateral; `closeTradeMarketTimeout(retry=False)` drops the close, the trade stays
        open). A timeout is simulated first: before Ostium's timeout has passed it is refused
        (REJECTED, `ORDER_TIMEOUT`, retryable: the order is still pending) and nothing is sent."""
        from providers.models import OstiumOrder

        refused = self._refuse_writes()
        if refused:
            return self._rejected(refused)
        row = OstiumOrder.objects.filter(venue_order_id=venue_order_id).first() or (
            OstiumOrder.objects.filter(idempotency_key=venue_order_id).first()
        )
        if row is None:
            return self._rejected(E.error(C.ORDER_NOT_FOUND, f"no Ostium order {venue_order_id}"))
        try:
            client, trader, delegated = self._mode(row.account, row.delegated)
        except VenueException as exc:
            return self._rejected(exc.error)
        who = trader if delegated else None
        reason = ""
        if row.order_type != "market":
            slot = row.result.get("limit") or {}
            index = slot.get("index")
            if index is None:  # placed before its slot was recorded: the newest resting limit on the pair
                limits = self._read(lambda: client.limit_orders(trader), during="limits")
                mine = [limit for limit in limits if str(limit["id"]).split("_")[1] == row.pair_id]
                if not mine:
                    return self._rejected(E.error(C.ORDER_NOT_FOUND, "no resting Ostium limit order"))
                index = str(mine[-1]["id"]).split("_")[2]
            try:
                client.write(
                    "cancel_limit", lambda sdk: sdk.ostium.cancel_limit_order(int(row.pair_id), int(index), who)
                )
            except Exception as exc:
                return self._rejected(E.error_from_exception(exc, during="cancel_limit"))
        else:
            if not row.venue_order_id:
                return self._rejected(E.error(C.ORDER_NOT_FOUND, "the market order has no Ostium order id yet"))
            order_id = int(row.venue_order_id)
            fn_name, args = (
                ("openTradeMarketTimeout", [order_id])
                if row.action == "open"
                else ("closeTradeMarketTimeout", [order_id, False])
            )
            try:
                problem = self._read(lambda: client.simulate(fn_name, args, trader=who), during="market_timeout")
            except VenueException as exc:
                return ExecutionResult(status=ExecStatus.UNKNOWN, error=exc.error, venue_order_id=venue_order_id)
            if problem is not None:
                name, details = problem
                if name == "WaitTimeout":  # refused for now: the order stays pending at the keeper
                    return self._rejected(
                        E.error(C.ORDER_TIMEOUT, "Ostium's market-order timeout has not passed yet", retryable=True)
                    )
                return self._rejected(E.error_from_revert(name, details))
            try:
                if row.action == "open":
                    client.write("open_timeout", lambda sdk: sdk.ostium.open_market_timeout(order_id, who))
                else:
                    client.write("close_timeout", lambda sdk: sdk.ostium.close_market_timeout(order_id, False, who))
            except Exception as exc:
                return self._rejected(E.error_from_exception(exc, during="market_timeout"))
            reason = "100"
        row.status = row.Status.CANCELLED
        row.result = {**row.result, "cancel_reason": reason} if reason else row.result
        row.save(update_fields=["status", "result", "updated_at"])
        return ExecutionResult(
            status=ExecStatus.CANCELLED,
            venue_order_id=venue_order_id,
            pair_id=row.pair_id,
            error=E.error_from_cancel_reason(reason) if reason else None,
        )

    # --- reads of state -----------------------------------------------------------------------
    def get_positions(self, *, account: str) -> list[VenuePosition]:
        client, trader, _ = self._mode(account, delegated=True)
        rows = self._read(lambda: client.open_trades(trader), during="open_trades")
        out = []
        for row in rows:
            out.append(
                VenuePosition(
                    account=trader,
                    symbol=f"{row['pair']['from']}-{row['pair']['to']}".upper(),
                    pair_id=str(row["pair"]["id"]),
                    trade_index=str(row["index"]),
                    side=Side.LONG if row["isBuy"] else Side.SHORT,
                    collateral=_d(row["collateral"], E6),
                    leverage=_d(row["leverage"], E2),
                    size=_d(row["tradeNotional"], E18),
                    entry_price=_d(row["openPrice"], E18),
                    opened_at=datetime.fromtimestamp(int(row.get("timestamp") or 0), tz=UTC),
                    stop_loss=_d(row["stopLossPrice"], E18) or None,
                    take_profit=_d(row["takeProfitPrice"], E18) or None,
                    funding_paid=_d(row.get("funding"), E6),
                )
            )
        return out

    def get_order_status(self, *, idempotency_key: str) -> ExecutionResult:
        """What became of the command with this key: resolves sending/unknown rows from the
        chain (the signer's nonce), then the order's settlement from the subgraph."""
        from providers.models import OstiumOrder

        row = OstiumOrder.objects.filter(idempotency_key=idempotency_key).first()
        if row is None:
            return ExecutionResult(status=ExecStatus.NOT_FOUND)
        return self.order_outcome(row)

    def order_outcome(self, row) -> ExecutionResult:
        S = row.Status
        if row.status in (S.SENDING, S.UNKNOWN) and not row.venue_order_id:
            resolved = self._resolve_sent(row)
            if resolved is not None:
                return resolved
        if row.status == S.FAILED:
            error = row.result.get("error") or {}
            return ExecutionResult(
                status=ExecStatus.REJECTED,
                pair_id=row.pair_id,
                transaction_hash=row.tx_hash,
                error=VenueError(
                    code=ErrorCode(error.get("code", C.REVERTED)),
                    message=error.get("message", "rejected"),
                    details=error.get("details", {}),
                ),
            )
        if row.status == S.NOT_SENT:
            return ExecutionResult(status=ExecStatus.NOT_FOUND)
        if row.status == S.CANCELLED:
            return ExecutionResult(
                status=ExecStatus.CANCELLED,
                venue_order_id=row.venue_order_id,
                pair_id=row.pair_id,
                error=E.error_from_cancel_reason(row.result.get("cancel_reason", "")),
            )
        if row.action not in ("open", "close"):
            return ExecutionResult(status=ExecStatus.FILLED, pair_id=row.pair_id, trade_index=row.trade_index)
        if row.venue_order_id.startswith("limit:"):
            return self._limit_outcome(row)
        if not row.venue_order_id:
            return ExecutionResult(status=ExecStatus.PENDING, venue_order_id=row.venue_order_id, pair_id=row.pair_id)
        return self._market_outcome(row)

    def _resolve_sent(self, row) -> ExecutionResult | None:
        """A write whose outcome we do not know: find it on chain by the signer's nonce."""
        if row.nonce is None:
            return ExecutionResult(status=ExecStatus.UNKNOWN, error=E.error(C.UNKNOWN_OUTCOME, "no nonce recorded"))
        client = self._client(delegated=row.delegated)
        trading = self.net.contracts["trading"].lower()
        try:
            receipt = None
            for nonce in range(row.nonce, row.nonce + 3):  # an approve may precede the trade
                found = client.find_transaction(signer=row.signer, nonce=nonce, from_block=row.from_block or 0)
                if found is not None and str(found["to"]).lower() == trading:
                    receipt = found
                    break
                if found is None:
                    break
            if receipt is None:
                pending = client.nonce(row.signer, "pending")
                latest = client.nonce(row.signer, "latest")
                if pending <= row.nonce and latest <= row.nonce:
                    row.status = row.Status.NOT_SENT
                    row.save(update_fields=["status", "updated_at"])
                    return ExecutionResult(status=ExecStatus.NOT_FOUND)
                return ExecutionResult(
                    status=ExecStatus.UNKNOWN, error=E.error(C.UNKNOWN_OUTCOME, "transaction not mined yet")
                )
            tx_hash = receipt["transactionHash"]
            row.tx_hash = tx_hash.to_0x_hex() if hasattr(tx_hash, "to_0x_hex") else str(tx_hash)
            if int(receipt["status"]) != 1:
                reason, args = client.revert_reason(tx_hash)
                error = E.error_from_revert(reason, args, tx_hash=row.tx_hash)
                row.status, row.error_code = row.Status.FAILED, error.code
                row.result = {
                    "error": {"code": error.code, "message": error.message, "details": _jsonable(error.details)}
                }
                row.save(update_fields=["tx_hash", "status", "error_code", "result", "updated_at"])
                return None
            row.venue_order_id = client.order_id_from_receipt(receipt)
            self._note_limit(row, client, receipt)
            row.status = row.Status.PENDING
            row.save(update_fields=["tx_hash", "venue_order_id", "status", "result", "updated_at"])
            return None
        except Exception as exc:
            return ExecutionResult(status=ExecStatus.UNKNOWN, error=E.error_from_exception(exc, during="resolve"))

    def _open_fill(self, row, client, order: dict, *, fee: Decimal, slippage: Decimal, when) -> Fill:
        """The fill of an executed open order (market or triggered limit), from its trade; notes
        the trade on the row (the caller saves it)."""
        price = _d(order.get("price"), E18)
        trade = self._read(lambda: client.trade(order["tradeID"]), during="trade") or {}
        size = _d(trade.get("tradeNotional") or order.get("tradeNotional"), E18)
        row.trade_id = str(order.get("tradeID") or "")
        row.trade_index = str(trade.get("index", row.trade_index))
        # open for the desk until the poller has seen how it closed: a trade the venue already
        # closed (an SL hit right after the fill) is still ours to book as closed
        row.trade_open = True
        return Fill(
            price=_d(trade.get("openPrice"), E18) or price,
            size=size,
            notional=(size * price),
            fee=fee,
            slippage=slippage,
            price_source="ostium",
            timestamp=when,
        )

    def _limit_outcome(self, row) -> ExecutionResult:
        """A resting limit/stop open: PENDING while it rests (or a trigger of it is being
        priced), FILLED once a keeper trigger opened the trade, CANCELLED once it was cancelled
        at the venue (by anyone). Its life is read from the trading contract's logs for its slot
        (trader, pair, index) since the placing block: our placement, the keeper triggers (each
        an open order, settled as the subgraph's order of that id), then a cancel or a later
        limit taking the slot. Neither the slot nor a timestamp is mistaken for ours: the
        placement is known by its transaction."""
        base = {"venue_order_id": row.venue_order_id, "pair_id": row.pair_id, "transaction_hash": row.tx_hash}
        info = row.result.get("limit") or {}
        if "index" not in info:
            return ExecutionResult(
                status=ExecStatus.UNKNOWN,
                error=E.error(C.ORDER_NOT_FOUND, "the limit's venue slot is not known"),
                **base,
            )
        client = self._client(delegated=row.delegated)
        try:
            events, scanned, caught_up = self._read(lambda: self._limit_slot_scan(client, row, info), during="limit")
        except VenueException as exc:
            return ExecutionResult(status=ExecStatus.UNKNOWN, error=exc.error, **base)
        if scanned < int(info["block"]):  # the node we read from has not seen the placing block yet
            return ExecutionResult(
                status=ExecStatus.PENDING, error=E.error(C.RPC_UNAVAILABLE, "RPC node behind the placement"), **base
            )
        ours = next(
            (i for i, e in enumerate(events) if e["event"] == "placed" and e["tx"].lower() == row.tx_hash.lower()), None
        )
        if ours is None:
            return ExecutionResult(
                status=ExecStatus.UNKNOWN,
                error=E.error(C.ORDER_NOT_FOUND, "the limit's placement is not in the chain's logs"),
                **base,
            )
        triggers, ended = [], None
        for event in events[ours + 1 :]:
            if event["event"] == "triggered":
                triggers.append(event["order_id"])
            else:  # cancelled, or placed: a later limit took the slot
                ended = event["event"]
                break
        lagging = priced = False  # a trigger whose order is not indexed yet / still pending
        for order_id in triggers:
            try:
                order = self._read(lambda order_id=order_id: client.order(order_id), during="order")
            except VenueException as exc:
                return ExecutionResult(status=ExecStatus.UNKNOWN, error=exc.error, **base)
            if not order:
                lagging = True
            elif order.get("isPending", True):
                priced = True
            elif not order.get("isCancelled"):
                return self._limit_filled(row, client, order, base)
        if lagging or priced:
            error = E.error(C.SUBGRAPH_LAGGING, "limit trigger not yet indexed") if lagging else None
            return ExecutionResult(status=ExecStatus.PENDING, error=error, **base)
        if ended == "cancelled":
            row.status = row.Status.CANCELLED
            row.result = {**row.result, "cancel_reason": "LimitCancelled"}
            row.save(update_fields=["status", "result", "updated_at"])
            return ExecutionResult(
                status=ExecStatus.CANCELLED, error=E.error_from_cancel_reason("LimitCancelled"), **base
            )
        if ended is None:
            if not caught_up:  # the logs are read up to an older block so far: undecided
                return ExecutionResult(status=ExecStatus.PENDING, **base)
            try:
                resting = self._read(
                    lambda: client.limit_resting(
                        trader=row.account, pair_id=info["pair_id"], index=info["index"], block=scanned
                    ),
                    during="limit",
                )
            except VenueException as exc:
                return ExecutionResult(status=ExecStatus.UNKNOWN, error=exc.error, **base)
            if resting:
                return ExecutionResult(status=ExecStatus.PENDING, **base)
        return ExecutionResult(
            status=ExecStatus.UNKNOWN,
            error=E.error(C.UNKNOWN_OUTCOME, "the limit left its venue slot with neither a fill nor a cancel"),
            **base,
        )

    def _limit_slot_scan(self, client, row, info) -> tuple[list[dict], int, bool]:
        """Our limit's slot events from its placing block on, read from the chain's logs in
        ranges of OSTIUM_LOG_BLOCK_RANGE blocks (at most OSTIUM_LOG_SCAN_RANGES per call) and
        kept on the row (`limit_scan`: the last block read and the events found), so each poll
        reads only the blocks since the last (and when it read: `read_at`, for the poller's
        OSTIUM_LIMIT_POLL_SECONDS). Returns (events, the block they are complete up to on this
        node, caught up). A node whose head is behind an earlier read (RPC providers balance
        calls over nodes) is read at its head."""
        scan = row.limit_scan or {}
        last = int(scan.get("to", int(info["block"]) - 1))
        events = list(scan.get("events", []))
        head = client.block_number()
        ranges = 0
        try:
            while last < head and ranges < settings.OSTIUM_LOG_SCAN_RANGES:
                end = min(head, last + settings.OSTIUM_LOG_BLOCK_RANGE)
                found = client.limit_slot_events(
                    trader=row.account, pair_id=info["pair_id"], from_block=last + 1, to_block=end
                )
                events += [e for e in found if e["index"] == str(info["index"])]
                last, ranges = end, ranges + 1
        finally:
            row.limit_scan = {"to": last, "events": events, "read_at": time.time()}
            type(row).objects.filter(pk=row.pk).update(limit_scan=row.limit_scan)
        return events, min(last, head), last >= head

    def _limit_filled(self, row, client, order: dict, base: dict) -> ExecutionResult:
        executed_at = order.get("executedAt")
        when = datetime.fromtimestamp(int(executed_at), tz=UTC) if executed_at else timezone.now()
        price = _d(order.get("price"), E18)
        ref = row.reference_price or price
        fill = self._open_fill(
            row, client, order, fee=_fee(order), slippage=abs(price - ref) / ref if ref else Decimal(0), when=when
        )
        row.status = row.Status.EXECUTED
        row.result = {**row.result, "order": order}
        row.save(update_fields=["status", "result", "trade_id", "trade_index", "trade_open", "updated_at"])
        return ExecutionResult(status=ExecStatus.FILLED, fill=fill, trade_index=row.trade_index, **base)

    def _market_outcome(self, row) -> ExecutionResult:
        client = self._client(delegated=row.delegated)
        base = {"venue_order_id": row.venue_order_id, "pair_id": row.pair_id, "transaction_hash": row.tx_hash}
        try:
            order = self._read(lambda: client.order(row.venue_order_id), during="order")
        except VenueException as exc:
            return ExecutionResult(status=ExecStatus.UNKNOWN, error=exc.error, **base)
        if not order or order.get("isPending", True):
            if not order:
                settled = self._read(lambda: client.settlement(row.venue_order_id, row.from_block), during="settle")
                if settled:
                    return ExecutionResult(
                        status=ExecStatus.PENDING,
                        error=E.error(C.SUBGRAPH_LAGGING, "settled on chain, not yet indexed"),
                        **base,
                    )
            return ExecutionResult(status=ExecStatus.PENDING, **base)
        if order.get("isCancelled"):
            reason = order.get("cancelReason") or ""
            row.status = row.Status.CANCELLED
            row.result = {"cancel_reason": reason, "order": order}
            row.save(update_fields=["status", "result", "updated_at"])
            return ExecutionResult(status=ExecStatus.CANCELLED, error=E.error_from_cancel_reason(reason), **base)
        price = _d(order.get("price"), E18)
        fee = _fee(order)
        executed = order.get("executedAt")
        when = datetime.fromtimestamp(int(executed), tz=UTC) if executed else timezone.now()
        ref = row.reference_price or price
        slippage = abs(price - ref) / ref if ref else Decimal(0)
        if row.action == "open":
            fill = self._open_fill(row, client, order, fee=fee, slippage=slippage, when=when)
        else:
            sent = _d(order.get("amountSentToTrader"), E6)
            pnl = sent + fee - row.collateral
            fill = Fill(
                price=price,
                size=row.size,
                notional=row.size * price,
                fee=fee,
                slippage=slippage,
                price_source="ostium",
                timestamp=when,
                realized_pnl=pnl,
            )
        row.status = row.Status.EXECUTED
        row.result = {"order": order}
        row.save(update_fields=["status", "result", "trade_id", "trade_index", "trade_open", "updated_at"])
        return ExecutionResult(
            status=ExecStatus.FILLED, fill=fill, trade_index=row.trade_index, **base | {"pair_id": row.pair_id}
        )


def _fee(order: dict) -> Decimal:
    return sum((_d(order.get(k), E6) for k in ("devFee", "vaultFee", "oracleFee", "liquidationFee")), Decimal(0))


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)
