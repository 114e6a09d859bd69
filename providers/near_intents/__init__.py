"""NEAR Intents: the verifier (`intents.near`) over NEAR JSON-RPC, the deposit/withdrawal bridge
service, the solver relay's JSON-RPC, NEP-413 signing, and loopback doubles of all three
(`sandbox/`). `client.py` is the only module that speaks HTTP."""
