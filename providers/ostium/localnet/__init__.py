"""Ostium localnet: a local Arbitrum-like chain on which the unmodified
ostium-python-sdk trades end to end (see ``start_localnet``)."""

from .config import DEFAULT_PAIRS, PairSpec
from .localnet import LocalAccount, Localnet, start_localnet

__all__ = ["DEFAULT_PAIRS", "LocalAccount", "Localnet", "PairSpec", "start_localnet"]
