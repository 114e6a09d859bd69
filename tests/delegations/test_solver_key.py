"""The NEAR Intents solver key: created on the server, stored encrypted like the delegate keys,
never shown; the signer reads it through the registered key source only."""

import pytest
from django.core.management import call_command

from delegations.keys import solver_key_create, solver_key_for_network, solver_public_key
from delegations.models import CustodyKey
from providers.interface import VenueException
from providers.near_intents.signing import public_key_of
from providers.near_intents.solver_keys import solver_seed

pytestmark = pytest.mark.django_db


def test_the_solver_key_is_created_encrypted_and_only_its_public_key_shown(capsys):
    with pytest.raises(VenueException) as caught:
        solver_seed("sandbox")
    assert caught.value.error.code == "KEY_MISSING"
    call_command("near_solver_key", "create", "--network", "sandbox")
    out = capsys.readouterr().out
    row = CustodyKey.objects.get(purpose="near_solver")
    seed = solver_seed("sandbox")  # through the source delegations registered
    assert len(seed) == 32 and public_key_of(seed) == row.address == solver_public_key("sandbox")
    assert row.address in out and seed.hex() not in out
    assert seed not in bytes(row.encrypted_key) and seed.hex().encode() not in bytes(row.encrypted_key)
    call_command("near_solver_key", "show", "--network", "sandbox")
    assert capsys.readouterr().out.strip() == row.address
    with pytest.raises(Exception, match="CUSTODY_KEY_EXISTS"):
        call_command("near_solver_key", "create", "--network", "sandbox")
    replaced = solver_key_create(network="sandbox", replace=True)
    assert (
        solver_key_for_network("sandbox") != seed
        and public_key_of(solver_key_for_network("sandbox")) == replaced.address
    )
    assert solver_key_for_network("mainnet") is None
