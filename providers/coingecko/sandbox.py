"""A loopback double of CoinGecko's `/api/v3/simple/price` (and `/ping`), speaking its wire format,
so the real client runs against it in tests and in `make run`'s demo.

    gecko = CoinGeckoSandbox({("bitcoin", "eur"): "60005"}).start()
    gecko.url                                   # http://127.0.0.1:<port>/api/v3
    gecko.set_price("bitcoin", "eur", "61000")

Scripting: `rate_limit(times=1, retry_after="30")` (429 with Retry-After), `delay(seconds)` (answer
late: the client times out), `fail(status=500)`, `invalid_json()`, `stale(seconds)`
(`last_updated_at` that many seconds old). `requests` records each request's path, query and headers.
"""

from __future__ import annotations

import threading
import time
from decimal import Decimal

from providers.reference.sandbox import HttpDouble, JsonHandler

RATE_LIMIT_BODY = {
    "status": {
        "error_code": 429,
        "error_message": "You've exceeded the Rate Limit. Please visit https://www.coingecko.com/en/api/pricing"
        " to subscribe to our API plans for higher rate limits.",
    }
}


class _Handler(JsonHandler):
    def do_GET(self):
        path, params = self.query()
        double: CoinGeckoSandbox = self.double
        double.requests.append({"path": path, "params": params, "headers": dict(self.headers.items())})
        script = double._next_script()
        if script.get("delay"):
            time.sleep(script["delay"])
        if script.get("status") == 429:
            headers = {"Retry-After": script["retry_after"]} if script.get("retry_after") is not None else {}
            self.reply(429, RATE_LIMIT_BODY, headers=headers)
            return
        if script.get("status"):
            self.reply(script["status"], {"error": "Internal Server Error"})
            return
        if script.get("invalid_json"):
            self.reply(200, raw=b"<html>not json</html>")
            return
        if path == "/api/v3/ping":
            self.reply(200, {"gecko_says": "(V3) To the Moon!"})
        elif path == "/api/v3/simple/price":
            self._simple_price(params)
        else:
            self.reply(404, {"error": "Not Found"})

    def _simple_price(self, params: dict) -> None:
        double: CoinGeckoSandbox = self.double
        if not params.get("vs_currencies"):
            self.reply(400, {"error": "Missing parameter vs_currencies"})
            return
        ids = [i for i in params.get("ids", "").split(",") if i]
        currencies = [c.lower() for c in params["vs_currencies"].split(",") if c]
        with_updated = params.get("include_last_updated_at") == "true"
        out = {}
        for coin in ids:
            values = {vs: float(double.prices[(coin, vs)]) for vs in currencies if (coin, vs) in double.prices}
            if not values:
                continue
            if with_updated:
                values["last_updated_at"] = int(time.time() - double.stale_seconds)
            out[coin] = values
        self.reply(200, out)


class CoinGeckoSandbox:
    SCRIPT_ACTIONS = frozenset({"set_price", "rate_limit", "delay", "fail", "invalid_json", "stale", "clear"})

    def __init__(self, prices: dict[tuple[str, str], object] | None = None, *, host: str = "127.0.0.1", port: int = 0):
        self.prices: dict[tuple[str, str], Decimal] = {k: Decimal(str(v)) for k, v in (prices or {}).items()}
        self.requests: list[dict] = []
        self.stale_seconds = 1.0
        self._scripts: list[dict] = []
        self._lock = threading.Lock()
        self._http = HttpDouble(_Handler, double=self, host=host, port=port, name="coingecko-sandbox")
        self.url = f"{self._http.url}/api/v3"

    def start(self) -> CoinGeckoSandbox:
        self._http.start()
        return self

    def stop(self) -> None:
        self._http.stop()

    def _next_script(self) -> dict:
        with self._lock:
            if not self._scripts:
                return {}
            script = self._scripts[0]
            if script.get("times") is not None:
                script["times"] -= 1
                if script["times"] <= 0:
                    self._scripts.pop(0)
            return script

    def _script(self, times: int | None, **script) -> None:
        with self._lock:
            self._scripts.append({**script, "times": times})

    # --- scripting ------------------------------------------------------------------------------
    def set_price(self, coin: str, vs: str, price) -> None:
        self.prices[(coin, vs.lower())] = Decimal(str(price))

    def rate_limit(self, times: int | None = 1, retry_after: str | None = "30") -> None:
        """The next `times` requests (None: all until `clear()`) answer 429 with this Retry-After."""
        self._script(times, status=429, retry_after=retry_after)

    def delay(self, seconds: float, times: int | None = 1) -> None:
        """Answer the next requests `seconds` late (a client with a shorter timeout gives up)."""
        self._script(times, delay=seconds)

    def fail(self, status: int = 500, times: int | None = 1) -> None:
        self._script(times, status=status)

    def invalid_json(self, times: int | None = 1) -> None:
        self._script(times, invalid_json=True)

    def stale(self, seconds: float) -> None:
        """Report every price's `last_updated_at` as `seconds` old."""
        self.stale_seconds = float(seconds)

    def clear(self) -> None:
        """Drop the scripted answers (prices and staleness stay)."""
        with self._lock:
            self._scripts.clear()
