"""Reads of delegations other apps use."""

from __future__ import annotations

from delegations.models import OstiumDelegation


def ostium_active_safes(*, network: str) -> list[str]:
    """The Safes whose delegation to the desk is active on `network` (their USDC is treasury inventory)."""
    return sorted(
        set(
            OstiumDelegation.objects.filter(network=network, status=OstiumDelegation.Status.ACTIVE).values_list(
                "safe_address", flat=True
            )
        )
    )
