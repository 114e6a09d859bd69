"""Delegate/relayer key custody: generated here, encrypted at rest, rotatable, loaded only
through delegate_key_load / relayer_key_load, shown as fingerprints."""

from __future__ import annotations

from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command

from config.errors import ApplicationError
from delegations import keys
from delegations.models import CustodyKey
from trading.models import Event


@pytest.fixture
def kek(settings):
    key = Fernet.generate_key().decode()
    settings.DELEGATE_KEY_ENCRYPTION_KEYS = [key]
    settings.OSTIUM_DELEGATE_KEY_SCOPE = "network"
    return key


@pytest.mark.django_db
def test_delegate_key_is_stored_encrypted_and_loads(kek):
    row = keys.delegate_key_create(network="localnet")
    account = keys.delegate_key_load("localnet")
    assert account.address == row.address == keys.delegate_key_address(network="localnet")
    stored = bytes(CustodyKey.objects.get(pk=row.pk).encrypted_key)
    assert bytes(account.key) not in stored and account.key.hex().encode() not in stored
    assert Fernet(kek.encode()).decrypt(stored) == bytes(account.key)
    event = Event.objects.get(topic="custody_key.created")
    assert event.payload["address"] == row.address and account.key.hex() not in str(event.payload)


@pytest.mark.django_db
def test_one_active_key_per_network_and_replace(kek):
    first = keys.delegate_key_create(network="localnet")
    with pytest.raises(ApplicationError) as exists:
        keys.delegate_key_create(network="localnet")
    assert exists.value.code == "CUSTODY_KEY_EXISTS"
    second = keys.delegate_key_create(network="localnet", replace=True)
    assert second.address != first.address
    assert keys.delegate_key_load("localnet").address == second.address
    assert not CustodyKey.objects.get(pk=first.pk).is_active
    # another network has its own key; a missing one is a clear error
    with pytest.raises(ApplicationError) as missing:
        keys.delegate_key_load("arbitrum")
    assert missing.value.code == "DELEGATE_KEY_MISSING"
    with pytest.raises(ApplicationError) as no_relayer:
        keys.relayer_key_load("localnet")
    assert no_relayer.value.code == "RELAYER_KEY_MISSING"


@pytest.mark.django_db
def test_rotation_re_encrypts_with_the_newest_key(settings, kek):
    delegate = keys.delegate_key_create(network="localnet")
    relayer = keys.relayer_key_create(network="localnet")
    before = bytes(CustodyKey.objects.get(pk=delegate.pk).encrypted_key)
    new = Fernet.generate_key().decode()
    settings.DELEGATE_KEY_ENCRYPTION_KEYS = [new, kek]
    assert keys.custody_keys_rotate_encryption() == 2
    after = bytes(CustodyKey.objects.get(pk=delegate.pk).encrypted_key)
    assert after != before
    settings.DELEGATE_KEY_ENCRYPTION_KEYS = [new]  # the old key is dropped
    assert keys.delegate_key_load("localnet").address == delegate.address
    assert keys.relayer_key_load("localnet").address == relayer.address
    settings.DELEGATE_KEY_ENCRYPTION_KEYS = [kek]  # only the old key: nothing decrypts
    with pytest.raises(ApplicationError) as refused:
        keys.delegate_key_load("localnet")
    assert refused.value.code == "KEY_ENCRYPTION_UNAVAILABLE"


@pytest.mark.django_db
def test_key_file_is_used_when_no_keys_in_environment(settings, tmp_path):
    path = tmp_path / "kek"
    key = Fernet.generate_key().decode()
    path.write_text(f"# newest first\n{key}\n")
    settings.DELEGATE_KEY_ENCRYPTION_KEYS = []
    settings.DELEGATE_KEY_ENCRYPTION_KEY_FILE = str(path)
    row = keys.delegate_key_create(network="localnet")
    assert Fernet(key.encode()).decrypt(bytes(row.encrypted_key))
    # a missing file is generated (development), readable only by its owner
    settings.DELEGATE_KEY_ENCRYPTION_KEY_FILE = str(tmp_path / "generated")
    keys.relayer_key_create(network="localnet")
    assert (tmp_path / "generated").stat().st_mode & 0o077 == 0


@pytest.mark.django_db
def test_per_user_scope(settings, kek, django_user_model):
    settings.OSTIUM_DELEGATE_KEY_SCOPE = "user"
    alice = django_user_model.objects.create_user(username="alice", email="a@example.com", password="pw")
    bob = django_user_model.objects.create_user(username="bob", email="b@example.com", password="pw")
    a = keys.delegate_key_create(network="localnet", user=alice)
    b = keys.delegate_key_create(network="localnet", user=bob)
    assert a.address != b.address
    assert keys.delegate_key_load("localnet", user=alice).address == a.address
    assert keys.delegate_key_address(network="localnet", user=bob) == b.address
    with pytest.raises(ApplicationError):
        keys.delegate_key_load("localnet")  # per-user keys need the user


@pytest.mark.django_db
def test_management_command_prints_fingerprints_only(kek):
    out = StringIO()
    call_command("ostium_delegate_key", "create", "--network", "localnet", stdout=out)
    call_command("ostium_delegate_key", "create-relayer", "--network", "localnet", stdout=out)
    call_command("ostium_delegate_key", "list", stdout=out)
    call_command("ostium_delegate_key", "rotate-encryption", stdout=out)
    text = out.getvalue()
    delegate = keys.delegate_key_load("localnet")
    relayer = keys.relayer_key_load("localnet")
    assert delegate.address in text and relayer.address in text
    for secret in (delegate.key.hex(), relayer.key.hex()):
        assert secret not in text.lower()
    assert "re-encrypted 2 key(s)" in text
    with pytest.raises(CommandError, match="CUSTODY_KEY_EXISTS"):
        call_command("ostium_delegate_key", "create", "--network", "localnet", stdout=StringIO())
