"""Access to the compiled contract artifacts committed under ./artifacts."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

ARTIFACTS_DIR = Path(__file__).resolve().parent / "artifacts"
CONTRACTS_DIR = Path(__file__).resolve().parent / "contracts"

CONTRACT_NAMES = (
    "MockUSDC",
    "OstiumFaucet",
    "OstiumRegistry",
    "OstiumTradingStorage",
    "OstiumPriceUpKeep",
    "OstiumTrading",
    "OstiumTradingCallbacks",
    "Multicall3",
)


@cache
def load_artifact(name: str) -> dict:
    with open(ARTIFACTS_DIR / f"{name}.json", encoding="utf-8") as fh:
        return json.load(fh)


def abi(name: str) -> list:
    return load_artifact(name)["abi"]
