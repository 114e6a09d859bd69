"""No credential in any log line the desk's processes write — ours or the servers' own (uvicorn's
websocket handshake lines and its access log print the path with its query string). A full
flow with marker credentials (sign-up password, access and refresh tokens, the token in
`/ws?token=...` and in a REST query string, an order through the worker), then the whole log
of web, worker and Beat is searched for them."""

import json
import uuid

from tests.conftest import wait_for
from tests.resilience.desk import next_frame, order_status, place_order


def test_no_credential_reaches_the_log(live_desk):
    desk = live_desk
    password = f"Marker-Pass-{uuid.uuid4().hex}"
    name = f"m{uuid.uuid4().hex[:10]}"
    with desk.client() as c:
        registered = c.post(
            "/api/v1/auth/register", json={"email": f"{name}@example.com", "username": name, "password": password}
        )
        assert registered.status_code == 201, registered.text
        c.post("/api/v1/auth/login", json={"email": f"{name}@example.com", "password": password + "-wrong"})
        pair = c.post("/api/v1/auth/login", json={"email": f"{name}@example.com", "password": password}).json()
    access, refresh = pair["access_token"], pair["refresh_token"]

    with desk.client(access) as c:
        assert c.get("/api/v1/me").status_code == 200
        c.get(f"/api/v1/me?token={access}&access_token={access}")  # credentials where they do not belong
        c.get(f"/api/v1/nowhere?token={access}")
    from websockets.sync.client import connect

    from tests.resilience.desk import ORIGIN

    with connect(f"{desk.ws_url('/ws')}?token={access}", origin=ORIGIN, open_timeout=15) as ws:
        ws.send(json.dumps({"type": "subscribe", "channel": "trades"}))
        assert next_frame(ws, lambda f: f["type"] == "subscribed", 10)
        placed = place_order(desk, access)
        assert placed.status_code == 202, placed.text
        order_id = placed.json()["order_id"]
        wait_for(lambda: order_status(desk, access, order_id) == "FILLED", 45, 0.25, what="the order filled")
    with connect(f"{desk.ws_url('/stream')}?token=not.a-valid.{access[-20:]}", origin=ORIGIN) as ws:
        next_frame(ws, lambda f: f["type"] == "error", 10)
    with desk.client() as c:
        rotated = c.post("/api/v1/auth/refresh", json={"refresh_token": refresh}).json()
        c.post("/api/v1/auth/logout", json={"refresh_token": rotated["refresh_token"]})

    log = desk.log_text()
    assert "WebSocket /ws?token=[REDACTED]" in log  # the server's handshake line was there, redacted
    for secret in (access, access.split(".")[2], refresh, rotated["access_token"], rotated["refresh_token"], password):
        assert secret not in log
