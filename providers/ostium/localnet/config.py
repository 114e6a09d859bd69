"""Static configuration of the localnet: pairs, groups and initial prices."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from web3 import Web3

# Address the SDK hard-codes for its testnet faucet (ostium_python_sdk.faucet).
SDK_TESTNET_FAUCET_ADDRESS = "0x6830C550814105d8B27bDAEC0DB391cAa7B967c8"
MULTICALL3_ADDRESS = "0xcA11bde05977b3631167028862bE2a173976CA11"


@dataclass(frozen=True)
class GroupSpec:
    id: int
    name: str
    min_leverage: int  # 1e2 (100 = 1x)
    max_leverage: int  # 1e2
    max_collateral_p: int  # 1e2 percent


@dataclass(frozen=True)
class PairSpec:
    from_: str
    to: str
    group: GroupSpec
    price: Decimal  # initial price
    min_lev_pos: int = 5_000_000  # 5 USDC notional minimum, 1e6
    max_oi: int = 1_000_000_000 * 10**6  # USD, 1e6
    spread_p: int = 0

    @property
    def symbol(self) -> str:
        return f"{self.from_}-{self.to}"

    @property
    def feed_id(self) -> str:
        return Web3.keccak(text=f"ostium-localnet:{self.from_}/{self.to}").to_0x_hex()


CRYPTO = GroupSpec(0, "crypto", 100, 5000, 1000)
FOREX = GroupSpec(1, "forex", 100, 10000, 1000)
COMMODITIES = GroupSpec(2, "commodities", 100, 10000, 1000)

DEFAULT_PAIRS: tuple[PairSpec, ...] = (
    PairSpec("BTC", "USD", CRYPTO, Decimal("65000")),
    PairSpec("ETH", "USD", CRYPTO, Decimal("3200")),
    PairSpec("EUR", "USD", FOREX, Decimal("1.08")),
    PairSpec("GBP", "USD", FOREX, Decimal("1.27")),
    PairSpec("USD", "JPY", FOREX, Decimal("150.5")),
    PairSpec("XAU", "USD", COMMODITIES, Decimal("2400")),
)

# Liquidation: a trade is liquidated when its loss reaches 90% of collateral,
# leaving a 10% margin (reported to the SDK as metaDatas.liqMarginThresholdP).
LIQ_MARGIN_THRESHOLD_P = 10
