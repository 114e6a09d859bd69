"""Off-chain keeper: answers price requests (fills or cancels market orders
through the oracle -> callbacks path) and triggers limit/stop opens, TP, SL
and liquidations. ``run_once()`` is deterministic for tests; ``start()`` runs
it in a polling thread for the demo."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from web3 import Web3

from .artifacts import abi
from .config import PairSpec
from .deploy import TX_FEES
from .prices import PriceSource, to_price_units

log = logging.getLogger(__name__)

AUTOMATION_TP, AUTOMATION_SL, AUTOMATION_LIQ, AUTOMATION_OPEN = 0, 1, 2, 3
LIMIT, STOP = 1, 2
LIQ_THRESHOLD_P = 90 * 10**6  # 1e6 percent
KEEPER_GAS = 3_000_000


def percent_profit(open_price: int, price: int, buy: bool, leverage: int) -> int:
    """Leveraged PnL in 1e6 percent, same rounding as the contracts."""
    diff = price - open_price if buy else open_price - price
    p = diff * 10**6 * leverage // open_price if diff >= 0 else -((-diff) * 10**6 * leverage // open_price)
    return max(min(p, 900 * 10**6), -100 * 10**6)


@dataclass
class KeeperAction:
    kind: str  # "trigger" or "fulfill"
    detail: str
    tx_hash: str
    ok: bool


class Keeper:
    def __init__(
        self,
        w3: Web3,
        addresses,
        keeper_address: str,
        prices: PriceSource,
        pairs: tuple[PairSpec, ...],
    ):
        self.w3 = w3
        self.address = Web3.to_checksum_address(keeper_address)
        self.prices = prices
        self.pairs = pairs
        self.storage = w3.eth.contract(address=addresses.tradingStorage, abi=abi("OstiumTradingStorage"))
        self.trading = w3.eth.contract(address=addresses.trading, abi=abi("OstiumTrading"))
        self.upkeep = w3.eth.contract(address=addresses.priceUpKeep, abi=abi("OstiumPriceUpKeep"))
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.paused = False

    # ----- helpers -----

    def _price(self, pair_index: int) -> int:
        return to_price_units(self.prices.get_price(self.pairs[pair_index].symbol))

    def _market_open(self, pair_index: int) -> bool:
        return self.prices.quote(self.pairs[pair_index].symbol).is_market_open

    def _send(self, fn, kind: str, detail: str) -> KeeperAction:
        tx_hash = fn.transact({"from": self.address, "gas": KEEPER_GAS, **TX_FEES})
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30, poll_latency=0.01)
        ok = receipt["status"] == 1
        if not ok:
            log.warning("keeper %s failed: %s (%s)", kind, detail, tx_hash.hex())
        return KeeperAction(kind, detail, tx_hash.to_0x_hex(), ok)

    # ----- triggers -----

    def _trade_trigger(self, t, price: int) -> int | None:
        collateral, open_price, tp, sl, trader, leverage, pair_index, index, buy, _ = t
        if percent_profit(open_price, price, buy, leverage) <= -LIQ_THRESHOLD_P:
            return AUTOMATION_LIQ
        if sl and (price <= sl if buy else price >= sl):
            return AUTOMATION_SL
        if tp and (price >= tp if buy else price <= tp):
            return AUTOMATION_TP
        return None

    @staticmethod
    def _limit_hit(order, price: int) -> bool:
        target, order_type, buy = order[1], order[9], order[11]
        if order_type == LIMIT:
            return price <= target if buy else price >= target
        return price >= target if buy else price <= target

    def check_triggers(self) -> list[KeeperAction]:
        actions = []
        now = int(time.time())
        for t in self.storage.functions.getAllOpenTrades().call():
            trader, pair_index, index = t[4], t[6], t[7]
            if not self._market_open(pair_index):
                continue
            order_type = self._trade_trigger(t, self._price(pair_index))
            if order_type is None:
                continue
            if self.storage.functions.pendingOrderFor(trader, pair_index, index).call():
                continue
            fn = self.trading.functions.executeAutomationOrder(order_type, trader, pair_index, index, now)
            actions.append(self._send(fn, "trigger", f"type={order_type} {trader}/{pair_index}/{index}"))
        for o in self.storage.functions.getAllOpenLimitOrders().call():
            trader, pair_index, index = o[4], o[8], o[10]
            if not self._market_open(pair_index) or not self._limit_hit(o, self._price(pair_index)):
                continue
            if self.storage.functions.pendingOrderForLimit(trader, pair_index, index).call():
                continue
            fn = self.trading.functions.executeAutomationOrder(AUTOMATION_OPEN, trader, pair_index, index, now)
            actions.append(self._send(fn, "trigger", f"open-limit {trader}/{pair_index}/{index}"))
        return actions

    # ----- price answers -----

    def fulfill_pending(self) -> list[KeeperAction]:
        actions = []
        ids, kinds, pair_indexes = self.upkeep.functions.getPendingRequests().call()
        for order_id, kind, pair_index in sorted(zip(ids, kinds, pair_indexes, strict=True)):
            quote = self.prices.quote(self.pairs[pair_index].symbol)
            if not quote.is_market_open:
                continue  # no price while the market is closed; the order can time out
            answer = (
                order_id,
                to_price_units(quote.mid),
                to_price_units(quote.bid),
                to_price_units(quote.ask),
                quote.is_day_trading_closed,
            )
            fn = self.upkeep.functions.fulfill(answer)
            actions.append(self._send(fn, "fulfill", f"order={order_id} kind={kind} price={quote.mid}"))
        return actions

    def run_once(self) -> list[KeeperAction]:
        """Trigger due automation orders, then answer every pending price
        request (including the ones just triggered)."""
        with self._lock:
            actions = self.check_triggers()
            actions += self.fulfill_pending()
            return actions

    # ----- polling loop -----

    def start(self, interval: float = 0.5) -> Keeper:
        if self._thread and self._thread.is_alive():
            return self
        self._stop.clear()

        def loop():
            while not self._stop.wait(interval):
                if self.paused:
                    continue
                try:
                    self.run_once()
                except Exception:  # keep the demo keeper alive
                    log.exception("keeper iteration failed")

        self._thread = threading.Thread(target=loop, name="ostium-keeper", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread and self._thread.is_alive():
            self._thread.join(timeout=10)
