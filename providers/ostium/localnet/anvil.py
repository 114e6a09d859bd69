"""Start and stop a local ``anvil`` chain (from the npm package
``@foundry-rs/anvil-linux-amd64``, installed with ``npm ci --ignore-scripts``)."""

from __future__ import annotations

import collections
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

ANVIL_ENV = "OSTIUM_LOCALNET_ANVIL"
NPM_BINARY = Path("node_modules") / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
ARBITRUM_SEPOLIA_CHAIN_ID = 421614
# Anvil's default dev mnemonic; accounts derived from it are public test keys.
DEFAULT_MNEMONIC = "test test test test test test test test test test test junk"
_LISTENING = re.compile(r"Listening on ([0-9.]+):(\d+)")


class AnvilError(RuntimeError):
    pass


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Linux: SIGTERM anvil if the Python process dies without stopping it."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, 15)  # PR_SET_PDEATHSIG, SIGTERM
    except (OSError, AttributeError):  # not glibc: anvil is still stopped by stop()
        return


def repo_root() -> Path:
    return Path(__file__).resolve().parents[3]


def find_anvil() -> Path:
    """Locate the anvil binary: $OSTIUM_LOCALNET_ANVIL, the repo's node_modules,
    then PATH."""
    override = os.environ.get(ANVIL_ENV)
    if override:
        return Path(override)
    candidate = repo_root() / NPM_BINARY
    if candidate.exists():
        return candidate
    found = shutil.which("anvil")
    if found:
        return Path(found)
    raise AnvilError(f"anvil not found: run `npm ci --ignore-scripts` in {repo_root()} or set {ANVIL_ENV}")


class Anvil:
    """A running anvil process listening on 127.0.0.1 with an OS-assigned port."""

    def __init__(
        self,
        chain_id: int = ARBITRUM_SEPOLIA_CHAIN_ID,
        accounts: int = 10,
        balance_eth: int = 10_000,
        base_fee_wei: int = 10_000_000,  # 0.01 gwei, Arbitrum-like
        mnemonic: str = DEFAULT_MNEMONIC,
        extra_args: list[str] | None = None,
        startup_timeout: float = 15.0,
    ):
        self.chain_id = chain_id
        self.mnemonic = mnemonic
        self.binary = find_anvil()
        args = [
            str(self.binary),
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--chain-id",
            str(chain_id),
            "--accounts",
            str(accounts),
            "--balance",
            str(balance_eth),
            "--mnemonic",
            mnemonic,
            "--base-fee",
            str(base_fee_wei),
            "--disable-min-priority-fee",
            "--disable-code-size-limit",
        ] + list(extra_args or [])
        self.output: collections.deque[str] = collections.deque(maxlen=200)
        self.process = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            bufsize=1,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        self.host, self.port = self._wait_for_port(startup_timeout)
        self.rpc_url = f"http://{self.host}:{self.port}"
        self._drain = threading.Thread(target=self._drain_output, name="anvil-output", daemon=True)
        self._drain.start()

    def _wait_for_port(self, timeout: float) -> tuple[str, int]:
        deadline = time.monotonic() + timeout
        assert self.process.stdout is not None
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                if self.process.poll() is not None:
                    raise AnvilError("anvil exited early:\n" + "\n".join(self.output))
                continue
            self.output.append(line.rstrip())
            match = _LISTENING.search(line)
            if match:
                return match.group(1), int(match.group(2))
        self.stop()
        raise AnvilError("anvil did not report its port in time:\n" + "\n".join(self.output))

    def _drain_output(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line.rstrip())

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        if self.process.stdout is not None:
            self.process.stdout.close()
