"""Where NEAR Intents signing gets the solver key from. The delegations app (key custody)
registers `delegations.keys.solver_key_for_network` in its AppConfig.ready; `providers` stays
free of app imports. The seed is used to sign and dropped, never logged or returned."""

from __future__ import annotations

from collections.abc import Callable

from providers.interface import ErrorCode, VenueError, VenueException

SolverKeySource = Callable[[str], "bytes | None"]
_source: SolverKeySource | None = None


def register_solver_key_source(source: SolverKeySource | None) -> None:
    """`source(network) -> 32-byte ed25519 seed | None`."""
    global _source
    _source = source


def solver_seed(network: str) -> bytes:
    seed = _source(network) if _source is not None else None
    if not seed:
        raise VenueException(
            VenueError(
                ErrorCode.KEY_MISSING,
                f"no NEAR Intents solver key for {network}: run `manage.py near_solver_key create --network {network}`",
                details={"network": network},
            )
        )
    return seed
