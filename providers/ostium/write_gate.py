"""Whether an Ostium write may go out now: the trading core's control states (the component's
arm/disarm state and the trading states), asked at side-effect time by the signer service (for
`signer:ostium`) and by the in-process poller's timeouts (for `executor:ostium`). The trading app
registers the gate (`TradingConfig.ready`); with none registered every write is refused. Keeps
`providers` free of app imports."""

from __future__ import annotations

from collections.abc import Callable

# gate(component=, asset=, reduces_exposure=, trading_states=) -> an object with .ok, .code, .message
WriteGate = Callable[..., object]
_gate: WriteGate | None = None


def register_write_gate(gate: WriteGate | None) -> None:
    global _gate
    _gate = gate


def write_refusal(
    component: str, *, asset: str = "", reduces_exposure: bool = True, trading_states: bool = True
) -> tuple[str, str] | None:
    """(code, message) when `component` may not write now, None when it may. `trading_states`:
    also apply the trading states (HALTED refuses all, REDUCE_ONLY what adds exposure)."""
    if _gate is None:
        return "VENUE_DISARMED", f"{component}: no control gate is registered"
    gate = _gate(component=component, asset=asset, reduces_exposure=reduces_exposure, trading_states=trading_states)
    return None if gate.ok else (gate.code, gate.message)
