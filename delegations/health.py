"""Control-panel health (registered with `trading.admin_panel.health`): the ETH each Ostium signer
holds for gas on OSTIUM_NETWORK — the desk's trader (when this process holds its key file), the
delegate (sends the delegated trades) and the relayer (pays for the Safes' execTransaction). Below
OSTIUM_GAS_WARN_ETH it warns; with none it is down: their transactions cannot be sent."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from django.conf import settings

from config.errors import ApplicationError
from delegations import chain, keys
from delegations.models import CustodyKey
from trading.admin_panel.health import DOWN, OK, UNKNOWN, WARN, HealthItem

WEI = Decimal(10) ** 18


def _signers(network: str) -> list[tuple[str, str]]:
    """(role, address) of the signers that pay gas on `network`."""
    found = []
    key_file = settings.OSTIUM_TRADER_KEY_FILE
    if key_file and Path(key_file).is_file():
        from eth_account import Account

        key = Path(key_file).read_text(encoding="utf-8").strip()
        found.append(("trader", Account.from_key(key if key.startswith("0x") else "0x" + key).address))
    delegates = CustodyKey.objects.filter(purpose=CustodyKey.Purpose.DELEGATE, network=network, is_active=True)
    found += [("delegate", address) for address in delegates.values_list("address", flat=True)[:5]]
    relayer = keys.relayer_key_address(network)
    if relayer:
        found.append(("relayer", relayer))
    return found


def ostium_gas_health() -> list[HealthItem]:
    network = str(settings.OSTIUM_NETWORK).lower()
    signers = _signers(network)
    if not signers:
        return []
    try:
        balances = chain.eth_balances(chain.network_config(network), [address for _, address in signers])
    except ApplicationError as exc:
        return [HealthItem(name=f"Ostium gas ({network})", status=UNKNOWN, detail=exc.message)]
    warn_below = Decimal(str(settings.OSTIUM_GAS_WARN_ETH))
    items = []
    for role, address in signers:
        eth = Decimal(balances[address]) / WEI
        status = DOWN if eth <= 0 else WARN if eth < warn_below else OK
        items.append(
            HealthItem(
                name=f"Ostium {role} gas ({network})",
                status=status,
                value=f"{eth.quantize(Decimal('0.0001'))} ETH",
                detail=address if status == OK else f"{address}: fund it with ETH (below {warn_below} ETH)",
            )
        )
    return items
