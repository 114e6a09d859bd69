"""A whole desk for the resilience suite, as `make run` runs it: the Procfile's web, worker and
Beat under the same supervisor (config/supervisor.py), against a PostgreSQL and a Redis of its
own — the embedded servers, started under a folder of the desk's own inside `.var/`, which the
fault tests stop and start again. Never the machine's servers. The Ostium localnet (the edge
of the world: chain, keeper, subgraph, price API) runs in the test process, and the desk
broadcasts its transactions through `HoldingRpc`, a JSON-RPC sandbox in front of it that can
hold a submission's answer."""

from __future__ import annotations

import http.server
import io
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import rlp

from config import embedded
from config.supervisor import Supervisor, read_procfile

ROOT = Path(__file__).resolve().parents[2]
ORIGIN = "http://localhost"
PROCESSES = ("web", "worker", "beat")
# high limits: the suite's own traffic is not what is being limited
THROTTLES = "auth=100000/min,api=100000/min,trade=100000/min,prices=100000/min,admin_ops=100000/min"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HoldingRpc:
    """JSON-RPC over HTTP in front of the localnet node: forwards everything; while `hold_to` is
    set, an `eth_sendRawTransaction` to that address is forwarded (the chain gets it) and its
    answer withheld until `release` is set — a submission whose outcome the caller never
    learns. `submissions` lists the `to` address of every transaction broadcast through it."""

    def __init__(self, upstream: str):
        self.upstream = upstream
        self.hold_to: str | None = None
        self.release = threading.Event()
        self.holding = threading.Event()
        self.submissions: list[str] = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                answer = httpx.post(proxy.upstream, content=body, headers={"content-type": "application/json"}).content
                request = json.loads(body)
                if isinstance(request, dict) and request.get("method") == "eth_sendRawTransaction":
                    to = proxy.transaction_to(request["params"][0])
                    proxy.submissions.append(to)
                    if proxy.hold_to and to == proxy.hold_to.lower():
                        proxy.holding.set()
                        proxy.release.wait(600)
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @staticmethod
    def transaction_to(raw_hex: str) -> str:
        raw = bytes.fromhex(raw_hex.removeprefix("0x"))
        if raw[0] < 0x7F:  # typed (EIP-2718): type byte, then [chain_id, nonce, fees..., gas, to, ...]
            fields = rlp.decode(raw[1:])
            to = fields[5] if raw[0] == 2 else fields[4]
        else:  # legacy: [nonce, gas_price, gas, to, ...]
            to = rlp.decode(raw)[3]
        return "0x" + to.hex()

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()


class Desk:
    def __init__(self, var: Path, net):
        self.var = var
        self.net = net
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.rpc = HoldingRpc(net.rpc_url)
        self.log = io.StringIO()
        self._log_lock = threading.Lock()
        self.supervisor: Supervisor | None = None
        self.thread: threading.Thread | None = None
        self.env: dict = {}

    # -- services of its own -------------------------------------------------------------------

    def start_postgres(self) -> str:
        return self._own(lambda: embedded.postgres_url(self.var))

    def start_redis(self) -> str:
        return self._own(lambda: embedded.redis_url(self.var))

    @staticmethod
    def _own(start):
        before = list(embedded._started)
        try:
            return start()
        finally:
            embedded._started[:] = before  # ours to stop, not the test session's

    def stop_postgres(self) -> None:
        embedded.stop_postgres(self.var)

    def stop_redis(self) -> None:
        embedded.stop_redis(self.var)

    # -- the desk ------------------------------------------------------------------------------

    def start(self) -> None:
        self.var.mkdir(parents=True, exist_ok=True)
        config = self.net.write_config(self.var / "ostium-localnet.json")
        key_file = self.var / "trader.key"
        key_file.write_text(self.net.traders[0].private_key)
        self.env = {
            **os.environ,
            "DATABASE_URL": self.start_postgres(),
            "REDIS_URL": self.start_redis(),
            "TRADEDESK_VAR_DIR": str(self.var),
            "DJANGO_SECRET_KEY": uuid.uuid4().hex * 2,
            "PORT": str(self.port),
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
            "PYTHONUNBUFFERED": "1",
            "LOG_LEVEL": "INFO",
            "THROTTLE_RATES": THROTTLES,
            "OSTIUM_NETWORK": "localnet",
            "OSTIUM_LOCALNET_CONFIG": str(config),
            "OSTIUM_TRADER_KEY_FILE": str(key_file),
            "OSTIUM_SUBMIT_RPC_URL": self.rpc.url,
            "RECONCILE_GRACE_SECONDS": "3",
            "JWT_ACCESS_TTL": "7200",  # the suite's tokens outlive the session
            "OSTIUM_SERVICE_HMAC_SECRETS": SIGNER_SECRET,
            # its own metrics directory: `manage.py run` empties the one it is given
            "PROMETHEUS_MULTIPROC_DIR": str(self.var / "prometheus"),
        }
        for name in ("CACHE_KEY_PREFIX", "CHANNELS_PREFIX", "CELERY_QUEUE"):
            self.env.pop(name, None)
        prepared = self.manage("run", "--check")
        self.operator_password = next(
            line.split(" / ")[1].split()[0] for line in prepared.splitlines() if line.startswith("operator login:")
        )
        entries = read_procfile(ROOT / "Procfile")
        entries = {name: entries[name] for name in PROCESSES}
        entries["web"] += " --access-log"  # uvicorn's own access log too: its lines must be redacted
        self.supervisor = Supervisor(entries, env=self.env, cwd=ROOT, out=self, stop_timeout=15)
        self.thread = threading.Thread(target=self.supervisor.run, daemon=True)
        self.thread.start()
        self.wait_ready(90)

    def stop(self) -> None:
        if self.supervisor is not None:
            self.supervisor.request_stop()
            self.thread.join(60)
        self.rpc.stop()
        self.stop_redis()
        self.stop_postgres()
        # what the processes printed, kept for a look after a failure (.var is git-ignored)
        (self.var.parent / "resilience-last.log").write_text(self.log_text())
        shutil.rmtree(self.var, ignore_errors=True)

    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
        return done.stdout

    def shell(self, code: str) -> str:
        return self.manage("shell", "-c", code)

    # -- the supervisor's output (file-like) ----------------------------------------------------

    def write(self, text: str) -> None:
        with self._log_lock:
            self.log.write(text)

    def flush(self) -> None:
        pass

    def log_text(self) -> str:
        with self._log_lock:
            return self.log.getvalue()

    def exits(self) -> list[tuple[str, int]]:
        return list(self.supervisor.exits)

    # -- talking to it --------------------------------------------------------------------------

    def ready(self) -> tuple[int, dict]:
        try:
            response = httpx.get(f"{self.base}/ready", timeout=10)
        except httpx.HTTPError as exc:
            return 0, {"error": str(exc)}
        return response.status_code, response.json()

    def wait_ready(self, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        status, body = self.ready()
        while status != 200:
            if time.monotonic() > deadline:
                raise AssertionError(f"/ready not 200 within {timeout}s: {status} {body}\n{self.log_text()[-4000:]}")
            time.sleep(0.5)
            status, body = self.ready()
        return body

    def client(self, token: str | None = None, timeout: float = 30) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base, headers=headers, timeout=timeout)

    def register(self) -> tuple[str, str]:
        """A new user; (email, access token)."""
        name = f"u{uuid.uuid4().hex[:10]}"
        email = f"{name}@example.com"
        with self.client() as c:
            response = c.post("/api/v1/auth/register", json={"email": email, "username": name, "password": PASSWORD})
        assert response.status_code == 201, response.text
        return email, response.json()["access_token"]

    def ws_url(self, path: str = "/ws") -> str:
        return f"ws://127.0.0.1:{self.port}{path}"


PASSWORD = "resilient-Pass-42!"
SIGNER_SECRET = "resilience-signer-secret"


# --- what the tests do with it -----------------------------------------------------------------


def place_order(desk: Desk, token: str, *, asset: str = "BTC-USD", key: str | None = None) -> httpx.Response:
    body = {"asset": asset, "direction": "long", "order_type": "MARKET", "collateral": "100", "leverage": "5"}
    headers = {"Idempotency-Key": key or uuid.uuid4().hex, "Prefer": "respond-async"}  # followed by polling
    with desk.client(token) as c:
        return c.post("/api/v1/trading/trades", json=body, headers=headers)


def order_status(desk: Desk, token: str, order_id: int) -> str | None:
    try:
        with desk.client(token, timeout=10) as c:
            response = c.get(f"/api/v1/trading/orders/{order_id}")
    except httpx.HTTPError:
        return None
    return response.json().get("status") if response.status_code == 200 else None


def ws_connect(desk: Desk, token: str, path: str = "/ws"):
    """A websocket session authenticated by the subprotocol pair (no token in the URL)."""
    from websockets.sync.client import connect

    return connect(desk.ws_url(path), origin=ORIGIN, subprotocols=["bearer", token], open_timeout=15)


def next_frame(ws, predicate, timeout: float):
    """The next frame satisfying `predicate`, or None after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            frame = json.loads(ws.recv(timeout=left))
        except TimeoutError:
            return None
        if predicate(frame):
            return frame
    return None
