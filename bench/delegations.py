"""Delegation chain re-check: the Beat job `delegations_chain_check` (one batched
`delegations(safe)` read per network and batch) vs the per-row path the reads use
(`delegation_reconcile` for each active delegation: one chain read and one transaction each),
over the same N active delegations on the Ostium localnet (anvil).

The traders are plain addresses that called `setDelegate` themselves (impersonated on anvil):
the re-check reads `delegations(trader)` only, whatever the trader is. Runs against the scratch
database `<DATABASE_URL's name>_bench` (as bench.protective).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from bench._db import on_bench_database


def _timed(fn) -> tuple[float, object]:
    started = time.perf_counter()
    result = fn()
    return (time.perf_counter() - started) * 1000, result


def _traders(net, n: int, delegate: str) -> list[str]:
    """n addresses that each set `delegate` on the Trading contract."""
    from eth_account import Account

    w3 = net.w3
    trading = net.contract("trading")
    data = trading.encode_abi("setDelegate", [delegate])
    traders, hashes = [], []
    gas_price = 2 * w3.eth.gas_price
    for _ in range(n):
        address = Account.create().address
        w3.provider.make_request("anvil_setBalance", [address, hex(10**18)])
        w3.provider.make_request("anvil_impersonateAccount", [address])
        tx = {"from": address, "to": trading.address, "data": data, "gas": 200_000, "gasPrice": gas_price}
        hashes.append(w3.eth.send_transaction(tx))
        traders.append(address)
    for tx_hash in hashes:
        assert w3.eth.wait_for_transaction_receipt(tx_hash)["status"] == 1
    return traders


def _rows(traders: list[str], delegate: str) -> None:
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from delegations.models import OstiumDelegation

    OstiumDelegation.objects.all().delete()
    user, _ = get_user_model().objects.get_or_create(username="bench-delegations", defaults={"email": "b@example.com"})
    now = timezone.now()
    OstiumDelegation.objects.bulk_create(
        OstiumDelegation(
            user=user,
            network="localnet",
            safe_address=trader,
            delegate_address=delegate,
            status=OstiumDelegation.Status.ACTIVE,
            action=OstiumDelegation.Action.DELEGATE,
            tx_to=trader,
            tx_data="0x",
            safe_nonce=0,
            safe_tx_hash="0x" + "00" * 32,
            activated_at=now,
        )
        for trader in traders
    )


def _per_row() -> int:
    from delegations.models import OstiumDelegation
    from delegations.services import delegation_reconcile

    rows = OstiumDelegation.objects.filter(status=OstiumDelegation.Status.ACTIVE)
    return sum(delegation_reconcile(delegation=d).status == "active" for d in rows)


def main() -> None:
    on_bench_database(_run)


def _run() -> None:
    from django.conf import settings
    from eth_account import Account

    from delegations.services import delegations_chain_check
    from providers.ostium.localnet import start_localnet

    net = start_localnet(keeper_interval=None)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            settings.OSTIUM_LOCALNET_CONFIG = str(net.write_config(Path(tmp) / "ostium-localnet.json"))
            settings.OSTIUM_NETWORK = "localnet"
            delegate = Account.create().address
            print("re-reading N active delegations from the chain; ms, median of 5 [min]; all stay active")
            for n in (200, 1000):
                _rows(_traders(net, n, delegate), delegate)
                batched = [_timed(lambda n=n: delegations_chain_check(batch_size=n)) for _ in range(5)]
                assert {r["checked"] for _, r in batched} == {n} and {r["revoked"] for _, r in batched} == {0}
                per_row = [_timed(_per_row) for _ in range(5)]
                assert {r for _, r in per_row} == {n}
                b = statistics.median(ms for ms, _ in batched)
                p = statistics.median(ms for ms, _ in per_row)
                print(
                    f"{n:>5} active: batched job {b:8.1f} [{min(ms for ms, _ in batched):8.1f}]   "
                    f"per-row reconcile {p:8.1f} [{min(ms for ms, _ in per_row):8.1f}]   x{p / b:.0f}"
                )
    finally:
        net.stop()


if __name__ == "__main__":
    main()
