"""LI.FI: quotes and status of cross-chain transfers and swaps (`providers.lifi.client`), and
its loopback double (`providers.lifi.sandbox`)."""
