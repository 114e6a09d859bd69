"""HTTP price API compatible with the SDK's Price class
(``GET /PricePublish/latest-prices``)."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from .config import PairSpec
from .prices import PriceSource

log = logging.getLogger(__name__)


def latest_prices(source: PriceSource, pairs: tuple[PairSpec, ...]) -> list[dict]:
    out = []
    for pair in pairs:
        q = source.quote(pair.symbol)
        out.append(
            {
                "feed_id": pair.feed_id,
                "bid": float(q.bid),
                "mid": float(q.mid),
                "ask": float(q.ask),
                "isMarketOpen": q.is_market_open,
                "isDayTradingClosed": q.is_day_trading_closed,
                "secondsToToggleIsDayTradingClosed": -1,
                "from": pair.from_,
                "to": pair.to,
                "timestampSeconds": q.timestamp,
            }
        )
    return out


class _Handler(BaseHTTPRequestHandler):
    server_version = "OstiumLocalnetPrices/1.0"

    def log_message(self, fmt, *args):
        log.debug("price api: " + fmt, *args)

    def _reply(self, status: int, payload) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urlparse(self.path)
        prices = latest_prices(self.server.source, self.server.pairs)
        if url.path.rstrip("/") == "/PricePublish/latest-prices":
            self._reply(200, prices)
        elif url.path.rstrip("/") == "/PricePublish/latest-price":
            query = parse_qs(url.query)
            asset = (query.get("asset") or [""])[0].upper().replace("-", "").replace("/", "")
            for p in prices:
                if p["from"] + p["to"] == asset:
                    self._reply(200, p)
                    return
            self._reply(404, {"error": f"unknown asset {asset}"})
        else:
            self._reply(404, {"error": "not found"})


class PriceServer:
    def __init__(self, source: PriceSource, pairs: tuple[PairSpec, ...], host: str = "127.0.0.1", port: int = 0):
        self.httpd = ThreadingHTTPServer((host, port), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.source = source
        self.httpd.pairs = pairs
        self.host, self.port = self.httpd.server_address[:2]
        self.url = f"http://{self.host}:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="ostium-price-api", daemon=True)

    def start(self) -> PriceServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
