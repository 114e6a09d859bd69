"""Kraken: the websocket v2 ticker stream and the REST Ticker refresh (`client.py` is the only
module speaking to Kraken), their wire format (`wire.py`) and a loopback double (`sandbox.py`)."""
