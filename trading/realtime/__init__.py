"""Live updates over Channels: `/ws` (prices, trades, positions, deposits) and `/stream`
(ledger topics). See docs/websockets.md for both protocols and their close codes."""
