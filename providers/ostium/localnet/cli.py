"""Foreground runner shared by ``python -m providers.ostium.localnet`` and the
``ostium_localnet`` Django management command."""

from __future__ import annotations

import argparse
import json
import signal
import threading
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from .localnet import Localnet, start_localnet

DEFAULT_CONFIG_OUT = Path(".var") / "ostium-localnet.json"


def add_arguments(parser) -> None:
    parser.add_argument(
        "--config-out",
        default=str(DEFAULT_CONFIG_OUT),
        help=f"write the network config JSON here (default: {DEFAULT_CONFIG_OUT})",
    )
    parser.add_argument("--keeper-interval", type=float, default=0.5, help="keeper polling interval, seconds")
    parser.add_argument(
        "--random-walk",
        type=float,
        default=1.0,
        help="seconds between random-walk price steps (0 = fixed prices)",
    )
    parser.add_argument("--seed", type=int, default=None, help="random-walk seed")
    parser.add_argument("--fund-usdc", type=Decimal, default=Decimal("100000"), help="USDC per demo trader")
    parser.add_argument(
        "--fund",
        action="append",
        default=[],
        metavar="ADDRESS",
        help="also fund this address with USDC and 100 ETH (repeatable)",
    )


def format_summary(net: Localnet) -> str:
    cfg = net.config()
    lines = [
        f"Ostium localnet ready in {net.startup_seconds:.2f}s",
        f"  chain id      {cfg['chain_id']}",
        f"  rpc           {cfg['rpc_url']}",
        f"  subgraph      {cfg['subgraph_url']}",
        f"  price api     {cfg['price_url']}/PricePublish/latest-prices",
        "  contracts:",
    ]
    lines += [f"    {name:<20}{address}" for name, address in cfg["contracts"].items()]
    lines.append("  accounts (public anvil test keys):")
    lines += [f"    {a['name']:<10}{a['address']}  {a['private_key']}" for a in cfg["accounts"]]
    return "\n".join(lines)


def run(options, out: Callable[[str], None] = print, stop_event: threading.Event | None = None) -> None:
    out("Starting Ostium localnet...")
    try:
        net = start_localnet(
            keeper_interval=options.keeper_interval or None,
            random_walk_interval=options.random_walk or None,
            price_seed=options.seed,
            fund_traders_usdc=options.fund_usdc,
        )
    except KeyboardInterrupt:
        out("Interrupted during startup; stopped.")
        return
    stop_event = stop_event or threading.Event()
    previous = {}
    try:
        for address in options.fund:
            net.fund(address, usdc=options.fund_usdc, eth=100)
        path = net.write_config(options.config_out)
        out(format_summary(net))
        out(f"Config written to {path}")
        out("Press Ctrl-C to stop.")
        if threading.current_thread() is threading.main_thread():
            # handle both explicitly: a background job may inherit SIGINT as ignored
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, lambda *_: stop_event.set())
        try:
            while not stop_event.wait(0.5):
                if not net.anvil.running():
                    out("anvil exited unexpectedly")
                    break
        except KeyboardInterrupt:
            pass
    finally:
        out("Stopping Ostium localnet...")
        net.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        out("Stopped.")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m providers.ostium.localnet", description=__doc__)
    add_arguments(parser)
    run(parser.parse_args(argv))


def dump_config(net: Localnet) -> str:
    return json.dumps(net.config(), indent=2)
