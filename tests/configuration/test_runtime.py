"""The lookup itself: typed values, the fallback chain, readers on an event loop (the feeds
process, the Ostium client's loop) and the change listeners."""

import asyncio

import pytest

from configuration import runtime
from configuration.models import ProviderConfiguration
from configuration.registry import KEYS, InvalidValue
from configuration.services import app_config_create, provider_config_update

pytestmark = pytest.mark.django_db


def test_the_environment_then_the_code_default_apply_without_a_row(settings):
    assert runtime.config_source("KRAKEN_TIMEOUT") == (5.0, "environment")
    settings.KRAKEN_TIMEOUT = 7.5  # as KRAKEN_TIMEOUT=7.5 in the environment
    assert runtime.config_source("KRAKEN_TIMEOUT") == (7.5, "environment")
    settings.RISK_DEFAULTS = {**settings.RISK_DEFAULTS, "max_notional": "123"}
    assert runtime.config_value("RISK_MAX_NOTIONAL") == "123"
    with pytest.raises(KeyError):
        runtime.config_value("DATABASE_URL")  # environment only


def test_values_are_typed_per_key_and_text_is_read_as_the_environment_writes_it():
    assert KEYS["PRICE_CACHE_TTL"].clean("45") == 45
    assert KEYS["OSTIUM_READ_TIMEOUT"].clean("2.5") == 2.5
    assert KEYS["OSTIUM_ENABLED"].clean("false") is False
    assert KEYS["WEBHOOK_RETRY_SCHEDULE"].clean("[5, 10]") == [5, 10]
    for name, bad in (
        ("PRICE_CACHE_TTL", 4.5),
        ("OSTIUM_READ_TIMEOUT", "1e999"),
        ("OSTIUM_READ_TIMEOUT", 10**400),
        ("OSTIUM_ENABLED", "maybe"),
        ("WEBHOOK_RETRY_SCHEDULE", "[5, true]"),
        ("RISK_MAX_NOTIONAL", "NaN"),
        ("OSTIUM_RPC_URL", "javascript:alert(1)"),
    ):
        with pytest.raises(InvalidValue):
            KEYS[name].clean(bad)


@pytest.mark.django_db(transaction=True)
def test_a_reader_on_an_event_loop_gets_the_database_value(operator_user):
    kraken = ProviderConfiguration.objects.get(provider_name="kraken")
    provider_config_update(actor=operator_user, config_id=kraken.pk, config_data={"timeout": 3}, reason="r")
    runtime.cache_clear()

    async def read():
        return runtime.config_source("KRAKEN_TIMEOUT")

    assert asyncio.run(read()) == (3.0, "database")


def test_a_change_runs_the_listeners_so_derived_caches_drop(operator_user):
    calls = []
    runtime.register_change_listener(lambda: calls.append(1))
    assert runtime.config_value("RISK_MAX_NOTIONAL") == "10000"  # a snapshot loaded
    app_config_create(actor=operator_user, config_key="RISK_MAX_NOTIONAL", config_value="700", reason="r")
    assert runtime.config_value("RISK_MAX_NOTIONAL") == "700" and calls
    runtime._listeners.pop()


def test_risk_defaults_from_the_database_reach_the_risk_limits(operator_user):
    from trading.selectors import risk_limits_for

    assert str(risk_limits_for("BTC").max_notional) == "10000"
    app_config_create(actor=operator_user, config_key="RISK_MAX_NOTIONAL", config_value="700", reason="tighter")
    assert str(risk_limits_for("BTC").max_notional) == "700"


def test_secrets_follow_a_key_rotation(operator_user, settings):
    from cryptography.fernet import Fernet
    from django.core.management import call_command

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [old]
    lifi = ProviderConfiguration.objects.get(provider_name="lifi")
    provider_config_update(actor=operator_user, config_id=lifi.pk, config_data={"api_key": "k-1"}, reason="r")
    settings.FIELD_ENCRYPTION_KEYS = [new, old]
    call_command("config_reencrypt")
    settings.FIELD_ENCRYPTION_KEYS = [new]  # the old key dropped: everything still opens
    runtime.cache_clear()
    assert runtime.config_value("LIFI_API_KEY") == "k-1"
    from config.crypto import decrypt
    from configuration.models import ProviderConfigurationVersion

    assert all(decrypt(t) == "k-1" for v in ProviderConfigurationVersion.objects.all() for t in v.secret_data.values())
