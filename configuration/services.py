"""Changes to the runtime configuration. Every change adds a version (never an overwrite),
checks the actor's permission for the key, validates the value against the registry, writes a
`config.changed` ledger event (who, what, version before and after, the reason; secrets as
fingerprints) and, after commit, tells every process to reload (`runtime.counter_bump`).

A version with a future `effective_at` waits (`config.change_scheduled`) until Beat's
`config_versions_apply_due` applies it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from config.crypto import decrypt, encrypt, fingerprint
from config.errors import ApplicationError, ConflictError, NotFoundError
from configuration import runtime
from configuration.models import (
    AppConfiguration,
    AppConfigurationVersion,
    ProviderConfiguration,
    ProviderConfigurationVersion,
    VersionStatus,
)
from configuration.registry import APP_KEYS, OPERATOR, PERMISSIONS, PROVIDERS, InvalidValue, Key, from_text, to_text
from trading.services.ledger import event_record
from trading.services.operator import actor_label, permission_require

UNSET: Any = object()
SCHEDULE_SLACK = timedelta(seconds=1)  # an effective_at closer than this is "now"
TOPIC_CHANGED = "config.changed"
TOPIC_SCHEDULED = "config.change_scheduled"


# --- shapes shown outside (API, admin, ledger): secrets as fingerprints ---------------------------
def secret_shown(token: str | None) -> dict | None:
    """What a stored secret looks like anywhere outside: its fingerprint, never the value."""
    if not token:
        return None
    try:
        return {"fingerprint": fingerprint(decrypt(token))}
    except Exception:
        return {"fingerprint": None, "error": "cannot be decrypted with the configured keys"}


def app_value_shown(config, *, value_text: str | None = None) -> Any:
    text = config.config_value if value_text is None else value_text
    if config.is_encrypted:
        return secret_shown(text)
    if text == "":
        return None
    key = APP_KEYS.get(config.config_key)
    try:
        return from_text(key.type if key else "string", text)
    except InvalidValue:
        return text


def provider_data_shown(config_data: dict, secret_data: dict) -> dict:
    return {**(config_data or {}), **{k: secret_shown(v) for k, v in (secret_data or {}).items()}}


def _diff(before: dict, after: dict) -> dict:
    return {
        name: {"before": before.get(name), "after": after.get(name)}
        for name in sorted(set(before) | set(after))
        if before.get(name) != after.get(name)
    }


def provider_versions_diff(a: ProviderConfigurationVersion, b: ProviderConfigurationVersion) -> dict:
    """Field by field, what changed from version `a` to version `b` (secrets as fingerprints)."""
    changes = _diff(
        provider_data_shown(a.config_data, a.secret_data), provider_data_shown(b.config_data, b.secret_data)
    )
    if a.is_active != b.is_active:
        changes["is_active"] = {"before": a.is_active, "after": b.is_active}
    return changes


def app_versions_diff(a: AppConfigurationVersion, b: AppConfigurationVersion) -> dict:
    changes = {}
    before, after = (
        app_value_shown(a.config, value_text=a.config_value),
        app_value_shown(b.config, value_text=b.config_value),
    )
    if before != after:
        changes["config_value"] = {"before": before, "after": after}
    if a.is_active != b.is_active:
        changes["is_active"] = {"before": a.is_active, "after": b.is_active}
    return changes


# --- validation --------------------------------------------------------------------------------
def _invalid(details: dict, message: str = "The configuration value is not valid.") -> ApplicationError:
    return ApplicationError(message, code="CONFIG_VALUE_INVALID", details=details)


def _reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise ApplicationError("A reason is required for every configuration change.", code="REASON_REQUIRED")
    return reason[:1000]


def _when(effective_at: datetime | None) -> tuple[datetime, bool]:
    now = timezone.now()
    if effective_at is None or effective_at <= now + SCHEDULE_SLACK:
        return now, False
    return effective_at, True


def app_key_get(name: str) -> Key:
    key = APP_KEYS.get(name)
    if key is None:
        raise ApplicationError(
            f"{name!r} is not a runtime configuration key.",
            code="CONFIG_KEY_UNKNOWN",
            details={"config_key": name, "known": sorted(APP_KEYS)},
        )
    return key


def _clean(key: Key, raw: Any, where: str) -> Any:
    try:
        return key.clean(raw)
    except InvalidValue as exc:
        raise _invalid({where: f"{key.name} {exc}"}, f"{key.name} {exc}.") from None


def _bump_after_commit() -> None:
    runtime.mark_dirty()

    def done():
        runtime.mark_dirty()
        runtime.counter_bump()

    transaction.on_commit(done)


def _next_version(model, config) -> int:
    return (model.objects.filter(config=config).aggregate(m=Max("version"))["m"] or 0) + 1


# --- app configurations ------------------------------------------------------------------------
def _app_event(*, topic, config, version, before_version, before_shown, actor, reason, rollback_of=None):
    after_shown = {
        "config_value": app_value_shown(config, value_text=version.config_value),
        "is_active": version.is_active,
    }
    event_record(
        topic=topic,
        aggregate_type="app_config",
        aggregate_id=config.pk,
        actor=actor,
        payload={
            "kind": "app",
            "config_key": config.config_key,
            "category": config.category,
            "version_before": before_version,
            "version_after": version.version,
            "reason": reason,
            "changes": _diff(before_shown, after_shown),
            "rollback_of": rollback_of,
            "effective_at": version.effective_at.isoformat(),
            "scheduled": version.status == VersionStatus.SCHEDULED,
        },
    )


def _app_state(config) -> dict:
    return {"config_value": app_value_shown(config) if config.version else None, "is_active": config.is_active}


def _app_version_add(*, config, actor, value_text, is_active, reason, effective_at, rollback_of=None):
    when, scheduled = _when(effective_at)
    label = actor_label(actor) if not isinstance(actor, str) else actor
    version = AppConfigurationVersion.objects.create(
        config=config,
        version=_next_version(AppConfigurationVersion, config),
        config_value=value_text,
        is_active=is_active,
        status=VersionStatus.SCHEDULED if scheduled else VersionStatus.APPLIED,
        effective_at=when,
        applied_at=None if scheduled else when,
        rollback_of=rollback_of,
        reason=reason,
        actor=label,
    )
    before_version, before_shown = config.version, _app_state(config)
    if scheduled:
        _app_event(
            topic=TOPIC_SCHEDULED, config=config, version=version, before_version=before_version,
            before_shown=before_shown, actor=label, reason=reason, rollback_of=rollback_of,
        )  # fmt: skip
        return config, version
    _app_apply(config, version)
    _app_event(
        topic=TOPIC_CHANGED, config=config, version=version, before_version=before_version,
        before_shown=before_shown, actor=label, reason=reason, rollback_of=rollback_of,
    )  # fmt: skip
    _bump_after_commit()
    return config, version


def _app_apply(config, version) -> None:
    config.config_value = version.config_value
    config.is_active = version.is_active
    config.version = version.version
    config.save(update_fields=["config_value", "is_active", "version", "updated_at"])


def _app_value_text(key: Key, raw: Any, where: str = "config_value") -> str:
    text = to_text(key.type, _clean(key, raw, where))
    return encrypt(text) if key.secret else text


@transaction.atomic
def app_config_create(
    *, actor, config_key: str, config_value: Any, reason: str, is_active: bool = True, effective_at=None
) -> tuple[AppConfiguration, AppConfigurationVersion]:
    key = app_key_get(config_key)
    permission_require(actor=actor, perm=key.permission)
    reason = _reason(reason)
    value_text = _app_value_text(key, config_value)
    config, created = AppConfiguration.objects.get_or_create(
        config_key=key.name,
        defaults={
            "config_type": key.type,
            "category": key.category,
            "description": key.description,
            "is_encrypted": key.secret,
            "is_active": False,
            "version": 0,
        },
    )
    if not created:
        raise ConflictError(
            f"{key.name} is already configured; change it with PUT app-configs/{config.pk}.",
            code="CONFIG_EXISTS",
            details={"id": config.pk},
        )
    return _app_version_add(
        config=config, actor=actor, value_text=value_text, is_active=is_active, reason=reason, effective_at=effective_at
    )


def _app_locked(config_id: int) -> AppConfiguration:
    config = AppConfiguration.objects.select_for_update().filter(pk=config_id).first()
    if config is None:
        raise NotFoundError("No such app configuration.", code="CONFIG_NOT_FOUND")
    return config


@transaction.atomic
def app_config_update(
    *, actor, config_id: int, reason: str, config_value: Any = UNSET, is_active: bool | None = None, effective_at=None
) -> tuple[AppConfiguration, AppConfigurationVersion]:
    config = _app_locked(config_id)
    key = app_key_get(config.config_key)
    permission_require(actor=actor, perm=key.permission)
    reason = _reason(reason)
    if config_value is UNSET and is_active is None:
        raise _invalid({"config_value": "give config_value, is_active or both"}, "Nothing to change.")
    value_text = config.config_value if config_value is UNSET else _app_value_text(key, config_value)
    if config_value is UNSET and not value_text:
        raise _invalid({"config_value": "required: this key has no value yet"})
    return _app_version_add(
        config=config,
        actor=actor,
        value_text=value_text,
        is_active=config.is_active if is_active is None else is_active,
        reason=reason,
        effective_at=effective_at,
    )


@transaction.atomic
def app_config_rollback(*, actor, config_id: int, version: int, reason: str):
    """Put version `version`'s value in force again, as a new version."""
    config = _app_locked(config_id)
    key = app_key_get(config.config_key)
    permission_require(actor=actor, perm=key.permission)
    reason = _reason(reason)
    target = AppConfigurationVersion.objects.filter(config=config, version=version).first()
    if target is None or target.status == VersionStatus.CANCELLED:
        raise NotFoundError(f"{config.config_key} has no version {version}.", code="CONFIG_VERSION_NOT_FOUND")
    return _app_version_add(
        config=config,
        actor=actor,
        value_text=target.config_value,
        is_active=target.is_active,
        reason=reason,
        effective_at=None,
        rollback_of=target.version,
    )


# --- provider configurations -------------------------------------------------------------------
def _provider_event(*, topic, config, version, before_version, before_shown, before_active, actor, reason, rollback_of):
    changes = _diff(before_shown, provider_data_shown(version.config_data, version.secret_data))
    if before_active != version.is_active:
        changes["is_active"] = {"before": before_active, "after": version.is_active}
    event_record(
        topic=topic,
        aggregate_type="provider_config",
        aggregate_id=config.pk,
        actor=actor,
        payload={
            "kind": "provider",
            "provider_name": config.provider_name,
            "provider_type": config.provider_type,
            "version_before": before_version,
            "version_after": version.version,
            "reason": reason,
            "changes": changes,
            "rollback_of": rollback_of,
            "effective_at": version.effective_at.isoformat(),
            "scheduled": version.status == VersionStatus.SCHEDULED,
        },
    )


def _provider_apply(config, version) -> None:
    config.config_data = version.config_data
    config.secret_data = version.secret_data
    config.is_active = version.is_active
    config.version = version.version
    config.save(update_fields=["config_data", "secret_data", "is_active", "version", "updated_at"])


def _provider_version_add(
    *, config, actor, config_data, secret_data, is_active, reason, effective_at, rollback_of=None
):
    when, scheduled = _when(effective_at)
    label = actor_label(actor) if not isinstance(actor, str) else actor
    version = ProviderConfigurationVersion.objects.create(
        config=config,
        version=_next_version(ProviderConfigurationVersion, config),
        config_data=config_data,
        secret_data=secret_data,
        is_active=is_active,
        status=VersionStatus.SCHEDULED if scheduled else VersionStatus.APPLIED,
        effective_at=when,
        applied_at=None if scheduled else when,
        rollback_of=rollback_of,
        reason=reason,
        actor=label,
    )
    before = {
        "before_version": config.version,
        "before_shown": provider_data_shown(config.config_data, config.secret_data),
        "before_active": config.is_active,
    }
    if not scheduled:
        _provider_apply(config, version)
        _bump_after_commit()
    _provider_event(
        topic=TOPIC_SCHEDULED if scheduled else TOPIC_CHANGED,
        config=config,
        version=version,
        actor=label,
        reason=reason,
        rollback_of=rollback_of,
        **before,
    )
    return config, version


def _provider_locked(config_id: int) -> ProviderConfiguration:
    config = ProviderConfiguration.objects.select_for_update().filter(pk=config_id).first()
    if config is None:
        raise NotFoundError("No such provider configuration.", code="CONFIG_NOT_FOUND")
    return config


@transaction.atomic
def provider_config_update(
    *, actor, config_id: int, config_data: dict, reason: str, activate: bool = True, effective_at=None
) -> tuple[ProviderConfiguration, ProviderConfigurationVersion]:
    """A new version of a provider's configuration. `config_data` is merged into the version in
    force: a field given is set, a field given as null is removed (its environment value or code
    default applies again), a field left out is kept. Secret fields are write-only: they are
    encrypted here and shown as fingerprints everywhere. `activate` false keeps the version but
    puts the environment back in force for every field of the provider."""
    config = _provider_locked(config_id)
    spec = PROVIDERS.get(config.provider_name)
    if spec is None:
        raise NotFoundError(f"{config.provider_name} is no longer a known provider.", code="CONFIG_NOT_FOUND")
    permission_require(actor=actor, perm=PERMISSIONS[OPERATOR])
    for key in spec.fields.values():
        permission_require(actor=actor, perm=key.permission)
    reason = _reason(reason)
    if not isinstance(config_data, dict):
        raise _invalid({"config_data": "must be an object"})
    unknown = sorted(set(config_data) - set(spec.fields))
    if unknown:
        raise ApplicationError(
            f"{config.provider_name} has no field {', '.join(unknown)}.",
            code="CONFIG_FIELD_UNKNOWN",
            details={"unknown": unknown, "known": sorted(spec.fields)},
        )
    data, secrets = dict(config.config_data or {}), dict(config.secret_data or {})
    errors = {}
    for name, raw in config_data.items():
        key = spec.fields[name]
        target = secrets if key.secret else data
        if raw is None:
            target.pop(name, None)
            continue
        try:
            value = key.clean(raw)
        except InvalidValue as exc:
            errors[f"config_data.{name}"] = str(exc)
            continue
        target[name] = encrypt(value) if key.secret else value
    if errors:
        first = next(iter(errors.items()))
        raise _invalid(errors, f"{first[0]} {first[1]}.")
    return _provider_version_add(
        config=config,
        actor=actor,
        config_data=data,
        secret_data=secrets,
        is_active=bool(activate),
        reason=reason,
        effective_at=effective_at,
    )


@transaction.atomic
def provider_config_rollback(*, actor, config_id: int, version: int, reason: str):
    """Put version `version` of a provider's configuration in force again, as a new version."""
    config = _provider_locked(config_id)
    permission_require(actor=actor, perm=PERMISSIONS[OPERATOR])
    reason = _reason(reason)
    target = ProviderConfigurationVersion.objects.filter(config=config, version=version).first()
    if target is None or target.status == VersionStatus.CANCELLED:
        raise NotFoundError(f"{config.provider_name} has no version {version}.", code="CONFIG_VERSION_NOT_FOUND")
    return _provider_version_add(
        config=config,
        actor=actor,
        config_data=target.config_data,
        secret_data=target.secret_data,
        is_active=target.is_active,
        reason=reason,
        effective_at=None,
        rollback_of=target.version,
    )


# --- scheduled versions (Beat) -----------------------------------------------------------------
def config_versions_apply_due(*, now: datetime | None = None) -> int:
    """Apply every scheduled version whose time has come, oldest first; returns how many."""
    now = now or timezone.now()
    applied = 0
    for model, head_apply, kind in (
        (AppConfigurationVersion, _app_apply, "app"),
        (ProviderConfigurationVersion, _provider_apply, "provider"),
    ):
        while True:
            with transaction.atomic():
                version = (
                    model.objects.select_for_update(skip_locked=True)
                    .filter(status=VersionStatus.SCHEDULED, effective_at__lte=now)
                    .order_by("effective_at", "id")
                    .first()
                )
                if version is None:
                    break
                config = type(version.config).objects.select_for_update().get(pk=version.config_id)
                if kind == "app":
                    before_version, before_shown = config.version, _app_state(config)
                else:
                    before = {
                        "before_version": config.version,
                        "before_shown": provider_data_shown(config.config_data, config.secret_data),
                        "before_active": config.is_active,
                    }
                version.status, version.applied_at = VersionStatus.APPLIED, timezone.now()
                version.save(update_fields=["status", "applied_at"])
                head_apply(config, version)
                common = {"config": config, "version": version, "actor": version.actor, "reason": version.reason}
                if kind == "app":
                    _app_event(
                        topic=TOPIC_CHANGED, before_version=before_version, before_shown=before_shown,
                        rollback_of=version.rollback_of, **common,
                    )  # fmt: skip
                else:
                    _provider_event(topic=TOPIC_CHANGED, rollback_of=version.rollback_of, **before, **common)
                _bump_after_commit()
                applied += 1
    return applied


def scheduled_changes(limit: int = 50) -> list[dict]:
    """Pending scheduled configuration changes, soonest first (the control panel lists them):
    what, which version, when, why and who — no values."""
    rows = [
        *AppConfigurationVersion.objects.filter(status=VersionStatus.SCHEDULED).select_related("config")[:limit],
        *ProviderConfigurationVersion.objects.filter(status=VersionStatus.SCHEDULED).select_related("config")[:limit],
    ]
    return [
        {
            "target": getattr(v.config, "config_key", None) or v.config.provider_name,
            "kind": "app" if isinstance(v, AppConfigurationVersion) else "provider",
            "config_id": v.config_id,
            "version": v.version,
            "effective_at": v.effective_at,
            "reason": v.reason,
            "actor": v.actor,
        }
        for v in sorted(rows, key=lambda v: v.effective_at)[:limit]
    ]


# --- key rotation ------------------------------------------------------------------------------
@transaction.atomic
def config_secrets_reencrypt(*, actor: str = "system") -> int:
    """Re-encrypt every stored configuration secret (head rows and versions) under the newest
    `FIELD_ENCRYPTION_KEYS` key, so the old keys can be dropped; the values and versions stay
    as they are. Returns how many tokens were re-encrypted."""
    from config.crypto import reencrypt

    count = 0
    for row in AppConfiguration.objects.select_for_update().filter(is_encrypted=True).order_by("pk"):
        for version in row.versions.select_for_update().order_by("pk"):
            if version.config_value:
                version.config_value = reencrypt(version.config_value)
                version.save(update_fields=["config_value"])
                count += 1
        if row.config_value:
            row.config_value = reencrypt(row.config_value)
            row.save(update_fields=["config_value"])
            count += 1
    for model in (ProviderConfiguration, ProviderConfigurationVersion):
        for row in model.objects.select_for_update().exclude(secret_data={}).order_by("pk"):
            row.secret_data = {name: reencrypt(token) for name, token in row.secret_data.items()}
            row.save(update_fields=["secret_data"])
            count += len(row.secret_data)
    event_record(
        topic="config.secrets_reencrypted",
        aggregate_type="configuration",
        aggregate_id="all",
        actor=actor,
        payload={"count": count},
    )
    return count


# --- provider rows -----------------------------------------------------------------------------
def provider_configs_ensure() -> None:
    """One row per registered provider, version 1 with no field set (the environment in force).
    Idempotent; never changes a row that exists."""
    now = timezone.now()
    for spec in PROVIDERS.values():
        config, created = ProviderConfiguration.objects.get_or_create(
            provider_name=spec.name,
            defaults={
                "provider_type": spec.type,
                "config_data": {},
                "secret_data": {},
                "is_active": True,
                "version": 1,
            },
        )
        if created:
            ProviderConfigurationVersion.objects.create(
                config=config,
                version=1,
                config_data={},
                secret_data={},
                is_active=True,
                status=VersionStatus.APPLIED,
                effective_at=now,
                applied_at=now,
                reason="initial: the environment and code defaults in force",
                actor="migration",
            )


def provider_configs_ensure_on_migrate(sender=None, using="default", **kwargs) -> None:
    from django.db import DEFAULT_DB_ALIAS

    if using == DEFAULT_DB_ALIAS:
        provider_configs_ensure()
