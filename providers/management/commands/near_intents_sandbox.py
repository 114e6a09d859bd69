"""``manage.py near_intents_sandbox``: run the NEAR Intents doubles (NEAR RPC with the verifier,
the bridge service, the relay) on loopback until Ctrl-C, and write the config file
NEAR_INTENTS_NETWORK=sandbox reads.

The desk's solver key (created here when missing, stored encrypted, never shown) is registered on
the double's verifier, as `add_public_key` does on intents.near. With --demo the solver account
starts with some inventory, and a scripted deposit arrives every --deposit-every seconds: the
bridge sees it (pending) and credits it --credit-after seconds later."""

import signal
import threading
import time

from django.conf import settings
from django.core.management.base import BaseCommand

from providers.sandbox_config import project_path

DEMO_BALANCES = {  # token id: units
    "nep141:btc.omft.near": ("2.5", 8),
    "nep141:eth.omft.near": ("40", 18),
    "nep141:gnosis-0x420ca0f9b9b604ce0fd9c18ef134c705e5fa3430.omft.near": ("25000", 18),
    "nep141:arb-0xaf88d065e77c8cc2239327c5edb3a432268e5831.omft.near": ("50000", 6),
}
DEMO_DEPOSIT_ASSET = "nep141:arb-0xaf88d065e77c8cc2239327c5edb3a432268e5831.omft.near"
DEMO_BTC, DEMO_EURE = "nep141:btc.omft.near", "nep141:gnosis-0x420ca0f9b9b604ce0fd9c18ef134c705e5fa3430.omft.near"


def demo_quote(world, n: int) -> str:
    """The relay's generator: BTC/EURe swap requests to every subscribed solver, both directions,
    exact in and exact out, sizes between 100 and 2,000 EURe."""
    import random

    eure = random.randint(100, 2000)
    kind = n % 4
    if kind == 0:  # a user buys BTC with EURe
        return world.relay.quote(asset_in=DEMO_EURE, asset_out=DEMO_BTC, exact_amount_in=eure * 10**18)
    if kind == 1:  # a user sells BTC for EURe
        return world.relay.quote(asset_in=DEMO_BTC, asset_out=DEMO_EURE, exact_amount_in=eure * 10**8 // 60000)
    if kind == 2:  # a user wants an exact amount of BTC
        return world.relay.quote(asset_in=DEMO_EURE, asset_out=DEMO_BTC, exact_amount_out=eure * 10**8 // 60000)
    return world.relay.quote(asset_in=DEMO_BTC, asset_out=DEMO_EURE, exact_amount_out=eure * 10**18)


class Command(BaseCommand):
    help = "Run the NEAR Intents doubles (NEAR RPC + verifier, bridge service, relay) until Ctrl-C."

    def add_arguments(self, parser):
        parser.add_argument("--config-out", default=settings.NEAR_INTENTS_SANDBOX_CONFIG)
        parser.add_argument("--solver-account", default=settings.NEAR_INTENTS_SOLVER_ACCOUNT or "tradedesk-solver.near")
        parser.add_argument("--demo", action="store_true", help="demo inventory and scripted deposits")
        parser.add_argument("--deposit-every", type=float, default=120.0, help="seconds between scripted deposits")
        parser.add_argument("--credit-after", type=float, default=45.0, help="seconds a scripted deposit stays pending")
        parser.add_argument(
            "--quote-every", type=float, default=5.0, help="demo: seconds between the relay's BTC/EURe quote requests"
        )

    def handle(self, *args, **options):
        stop = threading.Event()
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: stop.set())
        sandbox_run(
            config_out=options["config_out"],
            solver_account=options["solver_account"],
            demo=options["demo"],
            deposit_every=options["deposit_every"],
            credit_after=options["credit_after"],
            quote_every=options["quote_every"],
            out=self.stdout.write,
            stop=stop,
        )


def sandbox_run(
    *, config_out, solver_account, demo, deposit_every, credit_after, out, stop: threading.Event, quote_every=0.0
):
    """Run the doubles until `stop` is set (the command's body; tests run it in a thread)."""
    from decimal import Decimal

    from delegations.keys import solver_key_create, solver_public_key
    from providers.near_intents.sandbox import start_sandbox

    sandbox = start_sandbox(solver_account=solver_account)
    world = sandbox.world
    public_key = solver_public_key("sandbox") or solver_key_create(network="sandbox", actor="sandbox").address
    world.public_key_add(solver_account, public_key)
    if demo:
        for token_id, (units, decimals) in DEMO_BALANCES.items():
            world.balance_set(solver_account, token_id, int(Decimal(units).scaleb(decimals)))
    path = sandbox.write_config(project_path(config_out))
    out(f"NEAR Intents sandbox: rpc {sandbox.rpc.url}, bridge {sandbox.bridge.url}, relay {sandbox.relay.url}")
    out(f"solver account {solver_account}, public key {public_key}; config written to {path}")
    next_deposit = time.monotonic() + min(20.0, deposit_every)
    next_quote, quotes = time.monotonic() + quote_every, 0
    try:
        while not stop.wait(0.2):
            world.tick()
            if demo and quote_every > 0 and time.monotonic() >= next_quote:
                demo_quote(world, quotes)
                quotes += 1
                next_quote = time.monotonic() + quote_every
            if demo and time.monotonic() >= next_deposit:
                deposit = world.deposit_script(
                    account_id=solver_account,
                    token_id=DEMO_DEPOSIT_ASSET,
                    amount_raw=10_000 * 10**6,
                    credit_after=credit_after,
                )
                out(f"scripted deposit {deposit.tx_hash}: 10000 USDC pending, credited in {credit_after:.0f} s")
                next_deposit = time.monotonic() + deposit_every
    finally:
        sandbox.stop()
        out("NEAR Intents sandbox stopped.")
