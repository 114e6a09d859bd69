"""The README's "first trade in five requests", run as written (bash, curl, jq) against a live
server with a real Celery worker: the README cannot drift from the API."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from trading.models import Order, Trade

README = Path(__file__).resolve().parents[2] / "README.md"

pytestmark = [
    pytest.mark.celery,
    pytest.mark.skipif(not (shutil.which("curl") and shutil.which("jq")), reason="needs curl and jq"),
]


def _first_trade_block() -> str:
    text = README.read_text()
    marker = text.index("<!-- first-trade")
    return re.search(r"```sh\n(.*?)```", text[marker:], re.S).group(1)


def test_the_readme_first_trade_runs_as_written(live_server, celery_worker, markets, armed):
    script = _first_trade_block()
    assert "TD=http://127.0.0.1:8000/api/v1" in script
    script = script.replace("TD=http://127.0.0.1:8000/api/v1", f"TD={live_server.url}/api/v1")
    script = script.replace("do sleep 1; done", "do sleep 0.2; done")  # (the same wait, polled faster)

    run = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, timeout=120, check=False
    )

    assert run.returncode == 0, f"stdout:\n{run.stdout}\nstderr:\n{run.stderr}"
    opened = Order.objects.get(user__email="ada@example.com", reduce_only=False, order_type="MARKET")
    assert opened.status == "FILLED"
    protective = set(Order.objects.filter(parent=opened).values_list("order_type", flat=True))
    assert protective == {"STOP_LOSS", "TAKE_PROFIT"}
    close = Order.objects.get(user__email="ada@example.com", reduce_only=True)
    assert close.trade_id == opened.trade_id and '"order_id"' in run.stdout
    from tests.conftest import wait_for

    wait_for(lambda: Trade.objects.get(pk=opened.trade_id).status == "closed", 30, what="the trade closed")
