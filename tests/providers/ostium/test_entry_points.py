"""``python -m providers.ostium.localnet`` and ``manage.py ostium_localnet``."""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from web3 import Web3

from providers.ostium.localnet.anvil import repo_root

COMMAND_FILE = repo_root() / "providers" / "management" / "commands" / "ostium_localnet.py"

# Run the management command with a minimal settings module (no project
# settings needed): only the "providers" app is installed.
DJANGO_RUNNER = """
import sys
import django
from django.conf import settings
settings.configure(INSTALLED_APPS=["providers"], USE_TZ=True)
django.setup()
from django.core.management import call_command
call_command("ostium_localnet", *sys.argv[1:])
"""


def _run_until_config(
    cmd: list[str], config: Path, stop_signal=signal.SIGINT, timeout: float = 60.0
) -> tuple[str, dict]:
    env = dict(os.environ, PYTHONPATH=str(repo_root()), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(cmd, cwd=repo_root(), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + timeout
        while not config.exists():
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "localnet did not start"
            time.sleep(0.1)
        time.sleep(0.2)
        data = json.loads(config.read_text())
        w3 = Web3(Web3.HTTPProvider(data["rpc_url"]))
        assert w3.eth.chain_id == 421614
        assert w3.eth.get_code(data["contracts"]["trading"])
        proc.send_signal(stop_signal)
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, output
    # anvil is gone with it
    with pytest.raises(requests.exceptions.ConnectionError):
        Web3(Web3.HTTPProvider(data["rpc_url"], request_kwargs={"timeout": 2})).eth.get_block_number()
    return output, data


@pytest.mark.slow
def test_module_entry_point(tmp_path):
    config = tmp_path / "net.json"
    output, data = _run_until_config(
        [sys.executable, "-m", "providers.ostium.localnet", "--config-out", str(config), "--random-walk", "0"], config
    )
    assert "Ostium localnet ready in" in output and "Stopped." in output
    assert set(data) >= {"chain_id", "rpc_url", "subgraph_url", "price_url", "contracts", "accounts", "pairs"}
    assert set(data["contracts"]) >= {
        "usdc",
        "trading",
        "tradingStorage",
        "callbacks",
        "registry",
        "faucet",
        "multicall3",
        "safeSingleton",
        "safeProxyFactory",
        "safeFallbackHandler",
    }
    print(output.splitlines()[0])


@pytest.mark.slow
def test_management_command(tmp_path):
    pytest.importorskip("django")
    config = tmp_path / "cfg" / "net.json"
    fund = "0x000000000000000000000000000000000000dEaD"
    output, data = _run_until_config(
        [sys.executable, "-c", DJANGO_RUNNER, "--config-out", str(config), "--fund", fund],
        config,
        stop_signal=signal.SIGTERM,
    )
    assert "Config written to" in output and "Stopped." in output
    assert data["chain_id"] == 421614


def test_management_command_imports_only_base_command():
    tree = ast.parse(COMMAND_FILE.read_text())
    top_level = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert [(n.module, [a.name for a in n.names]) for n in top_level] == [
        ("django.core.management.base", ["BaseCommand"])
    ]
    assert "models" not in COMMAND_FILE.read_text()
