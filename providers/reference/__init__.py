"""Reference prices: Kraken (websocket stream, REST refresh) and CoinGecko (poll) feed a fair rate
per pair by a written policy (docs/reference-prices.md).

- `config`: pairs, sources and their endpoints (live or the loopback sandbox doubles).
- `store`: the live state in Redis — the latest quote per source and pair, each source's health
  fields and counters. The feeds process and the CoinGecko poll write it; everyone reads it.
- `policy`: the pure policy (Kraken primary, CoinGecko fallback and cross-check, basis for crosses).
- `service`: evaluations, the stored samples, the state the API and the control panel show, and
  `reference_rate_use(pair, purpose=...)`, the one way the desk takes a fair rate to act on.
- `sampler`: the feeds process's loop that stores samples as prices change.
"""
