"""CoinGecko: the `/simple/price` poll (`client.py` is the only module speaking to CoinGecko), the
Beat job's logic with its back-off (`poll.py`) and a loopback double (`sandbox.py`)."""
