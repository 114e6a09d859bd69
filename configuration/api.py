"""Staff API of the runtime configuration (seed 003 §4.5), `/api/v1/admin/config/...`:

- `GET app-configs?category=&skip=&limit=` → `{items, total, skip, limit}`; `POST app-configs`;
  `GET|PUT app-configs/{id}`; `GET app-configs/{id}/versions`; `POST app-configs/{id}/rollback`;
- `GET provider-configs`; `GET|PUT provider-configs/{id}` (PUT `{config_data, activate}` →
  `{id, provider_name, provider_type, is_active, version}`); `GET provider-configs/{id}/versions`;
  `POST provider-configs/{id}/rollback`;
- `GET keys`: every runtime key, the value this process has in force and where it comes from.

Staff only (`IsStaff`); each change also needs the key's permission (configuration/registry.py)
and a reason. Secret values are write-only: every answer shows their fingerprint."""

from __future__ import annotations

import re

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import NotFoundError
from configuration import services
from configuration.models import AppConfiguration, ConfigType, ProviderConfiguration, ProviderType
from configuration.registry import KEYS, PROVIDERS
from configuration.runtime import config_source
from trading.permissions import IsStaff
from trading.throttling import ScopedUserAndIpThrottle

_DIGITS = re.compile(r"[0-9]{1,10}")
ERROR = {"description": "the error envelope {error: {code, message, details, timestamp, request_id}}"}
SECRET_HELP = "secret values are shown as {fingerprint}, never in plain text"  # noqa: S105 (a help text)


class _Staff(APIView):
    permission_classes = [IsStaff]
    throttle_classes = [ScopedUserAndIpThrottle]
    throttle_scope = "admin_ops"


# --- shapes ------------------------------------------------------------------------------------
class AppConfigOut(serializers.Serializer):
    id = serializers.IntegerField()
    config_key = serializers.CharField()
    config_type = serializers.ChoiceField(choices=ConfigType.choices)
    category = serializers.CharField()
    is_encrypted = serializers.BooleanField()
    is_active = serializers.BooleanField()
    config_value = serializers.JSONField(allow_null=True, help_text=f"the value in force; {SECRET_HELP}")
    description = serializers.CharField(allow_null=True)
    version = serializers.IntegerField(help_text="the version in force (0: none yet)")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


def _app_out(config: AppConfiguration) -> dict:
    return {
        "id": config.pk,
        "config_key": config.config_key,
        "config_type": config.config_type,
        "category": config.category,
        "is_encrypted": config.is_encrypted,
        "is_active": config.is_active,
        "config_value": services.app_value_shown(config) if config.version else None,
        "description": config.description,
        "version": config.version,
        "created_at": config.created_at,
        "updated_at": config.updated_at,
    }


class AppConfigPage(serializers.Serializer):
    items = AppConfigOut(many=True)
    total = serializers.IntegerField()
    skip = serializers.IntegerField()
    limit = serializers.IntegerField()


class _Count(serializers.IntegerField):
    """A whole number written in ASCII digits (`?skip=١` or `?limit=1_0` is a 400, as everywhere)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # "-5" is not "not an integer": one message for both, as the paginated lists say it
        whole = f"Must be a whole number of at least {self.min_value}."
        self.error_messages = {**self.error_messages, "invalid": whole, "min_value": whole}

    def get_value(self, dictionary):
        if dictionary.get(self.field_name) == "":
            return ""  # `?limit=` is not "no limit given"
        return super().get_value(dictionary)

    def to_internal_value(self, data):
        if isinstance(data, str) and not _DIGITS.fullmatch(data):
            self.fail("invalid")
        return super().to_internal_value(data)


class AppConfigQuery(serializers.Serializer):
    category = serializers.CharField(required=False, max_length=50)
    skip = _Count(required=False, default=0, min_value=0, max_value=10**9)
    limit = _Count(required=False, default=100, min_value=1, max_value=500)


class _Change(serializers.Serializer):
    reason = serializers.CharField(max_length=1000, trim_whitespace=True, help_text="why (required; on the ledger)")
    effective_at = serializers.DateTimeField(
        required=False, allow_null=True, help_text="a future time: the version waits until then (applied by Beat)"
    )


class AppConfigCreate(_Change):
    config_key = serializers.CharField(max_length=100)
    config_value = serializers.JSONField(help_text="typed per the key (a string as the environment writes it works)")
    is_active = serializers.BooleanField(required=False, default=True)
    config_type = serializers.ChoiceField(choices=ConfigType.choices, required=False, help_text="must match the key's")
    category = serializers.CharField(required=False, help_text="must match the key's")
    is_encrypted = serializers.BooleanField(required=False, help_text="must match the key's")


class AppConfigUpdate(_Change):
    config_value = serializers.JSONField(required=False)
    is_active = serializers.BooleanField(required=False)


class RollbackIn(serializers.Serializer):
    version = serializers.IntegerField(min_value=1, max_value=2**31 - 1)
    reason = serializers.CharField(max_length=1000, trim_whitespace=True)


class VersionOut(serializers.Serializer):
    version = serializers.IntegerField()
    status = serializers.CharField(help_text="applied | scheduled | cancelled")
    is_active = serializers.BooleanField()
    value = serializers.JSONField(allow_null=True, help_text=f"config_value or config_data; {SECRET_HELP}")
    changes = serializers.JSONField(help_text="field: {before, after} against the version before it")
    effective_at = serializers.DateTimeField()
    applied_at = serializers.DateTimeField(allow_null=True)
    rollback_of = serializers.IntegerField(allow_null=True)
    reason = serializers.CharField()
    actor = serializers.CharField()
    created_at = serializers.DateTimeField()


class ProviderConfigOut(serializers.Serializer):
    id = serializers.IntegerField()
    provider_name = serializers.CharField()
    provider_type = serializers.ChoiceField(choices=ProviderType.choices)
    is_active = serializers.BooleanField()
    version = serializers.IntegerField()


class ProviderConfigDetail(ProviderConfigOut):
    config_data = serializers.JSONField(help_text=f"the fields set in the database; {SECRET_HELP}")
    fields = serializers.JSONField(help_text="every field: {setting, type, secret, description}")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class ProviderConfigPage(serializers.Serializer):
    items = ProviderConfigDetail(many=True)
    total = serializers.IntegerField()


class ProviderConfigUpdate(_Change):
    config_data = serializers.DictField(
        help_text="merged into the version in force: null removes a field (the environment applies again)"
    )
    activate = serializers.BooleanField(required=False, default=True)


class KeyOut(serializers.Serializer):
    name = serializers.CharField()
    type = serializers.CharField()
    category = serializers.CharField()
    provider = serializers.CharField()
    field = serializers.CharField()
    secret = serializers.BooleanField()
    role = serializers.CharField(help_text="who may change it: operator | risk_admin")
    description = serializers.CharField()
    value = serializers.JSONField(allow_null=True, help_text=f"in force in this process; {SECRET_HELP}")
    source = serializers.CharField(help_text="database | environment (the environment or the code default)")


def _provider_out(config: ProviderConfiguration, *, detail: bool = True) -> dict:
    out = {
        "id": config.pk,
        "provider_name": config.provider_name,
        "provider_type": config.provider_type,
        "is_active": config.is_active,
        "version": config.version,
    }
    if detail:
        spec = PROVIDERS.get(config.provider_name)
        out.update(
            config_data=services.provider_data_shown(config.config_data, config.secret_data),
            fields={
                name: {"setting": k.name, "type": k.type, "secret": k.secret, "description": k.description}
                for name, k in (spec.fields.items() if spec else ())
            },
            created_at=config.created_at,
            updated_at=config.updated_at,
        )
    return out


def _versions_out(versions: list, diff, shown) -> list[dict]:
    ordered = sorted(versions, key=lambda v: v.version)
    out = []
    for before, version in zip([None, *ordered], ordered, strict=False):
        out.append(
            {
                "version": version.version,
                "status": version.status,
                "is_active": version.is_active,
                "value": shown(version),
                "changes": diff(before, version) if before is not None else {},
                "effective_at": version.effective_at,
                "applied_at": version.applied_at,
                "rollback_of": version.rollback_of,
                "reason": version.reason,
                "actor": version.actor,
                "created_at": version.created_at,
            }
        )
    return out[::-1]


def _app_get(pk: int) -> AppConfiguration:
    config = AppConfiguration.objects.filter(pk=pk).first()
    if config is None:
        raise NotFoundError("No such app configuration.", code="CONFIG_NOT_FOUND")
    return config


def _provider_get(pk: int) -> ProviderConfiguration:
    config = ProviderConfiguration.objects.filter(pk=pk).first()
    if config is None:
        raise NotFoundError("No such provider configuration.", code="CONFIG_NOT_FOUND")
    return config


# --- app configurations ------------------------------------------------------------------------
class AppConfigList(_Staff):
    @extend_schema(
        operation_id="admin_config_app_configs_list",
        parameters=[AppConfigQuery],
        responses={200: AppConfigPage, 400: ERROR, 403: ERROR},
        description="App configurations stored in the database (seed 003 §4.5.1).",
    )
    def get(self, request):
        q = AppConfigQuery(data=request.query_params)
        q.is_valid(raise_exception=True)
        rows = AppConfiguration.objects.all()
        if q.validated_data.get("category"):
            rows = rows.filter(category=q.validated_data["category"])
        skip, limit = q.validated_data["skip"], q.validated_data["limit"]
        return Response(
            {
                "items": [_app_out(c) for c in rows.order_by("category", "config_key")[skip : skip + limit]],
                "total": rows.count(),
                "skip": skip,
                "limit": limit,
            }
        )

    @extend_schema(
        operation_id="admin_config_app_configs_create",
        request=AppConfigCreate,
        responses={201: AppConfigOut, 400: ERROR, 403: ERROR, 409: ERROR},
        description="Store a runtime key in the database (version 1). Unknown keys and wrong types are refused.",
    )
    def post(self, request):
        body = AppConfigCreate(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        key = services.app_key_get(data["config_key"])
        mismatch = {
            name: f"{key.name} is {expected!r}, not {data[name]!r}"
            for name, expected in (("config_type", key.type), ("category", key.category), ("is_encrypted", key.secret))
            if name in data and data[name] != expected
        }
        if mismatch:
            from config.errors import ApplicationError

            raise ApplicationError(
                "The key's type, category and encryption are fixed in code.",
                code="CONFIG_KEY_MISMATCH",
                details=mismatch,
            )
        config, _ = services.app_config_create(
            actor=request.user,
            config_key=key.name,
            config_value=data["config_value"],
            is_active=data["is_active"],
            reason=data["reason"],
            effective_at=data.get("effective_at"),
        )
        config.refresh_from_db()
        return Response(_app_out(config), status=status.HTTP_201_CREATED)


class AppConfigDetail(_Staff):
    @extend_schema(operation_id="admin_config_app_configs_get", responses={200: AppConfigOut, 403: ERROR, 404: ERROR})
    def get(self, request, pk: int):
        return Response(_app_out(_app_get(pk)))

    @extend_schema(
        operation_id="admin_config_app_configs_update",
        request=AppConfigUpdate,
        responses={200: AppConfigOut, 400: ERROR, 403: ERROR, 404: ERROR},
        description="A new version of the value and/or is_active (now, or at effective_at).",
    )
    def put(self, request, pk: int):
        body = AppConfigUpdate(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        config, _ = services.app_config_update(
            actor=request.user,
            config_id=pk,
            reason=data["reason"],
            config_value=data.get("config_value", services.UNSET),
            is_active=data.get("is_active"),
            effective_at=data.get("effective_at"),
        )
        config.refresh_from_db()
        return Response(_app_out(config))


class AppConfigVersions(_Staff):
    @extend_schema(
        operation_id="admin_config_app_configs_versions",
        responses={200: VersionOut(many=True), 403: ERROR, 404: ERROR},
        description="Every version, newest first, each with what changed against the one before.",
    )
    def get(self, request, pk: int):
        config = _app_get(pk)
        versions = list(config.versions.all())
        for v in versions:
            v.config = config
        return Response(
            _versions_out(
                versions,
                services.app_versions_diff,
                lambda v: services.app_value_shown(config, value_text=v.config_value),
            )
        )


class AppConfigRollback(_Staff):
    @extend_schema(
        operation_id="admin_config_app_configs_rollback",
        request=RollbackIn,
        responses={200: AppConfigOut, 400: ERROR, 403: ERROR, 404: ERROR},
        description="Put an earlier version's value in force again, as a new version.",
    )
    def post(self, request, pk: int):
        body = RollbackIn(data=request.data)
        body.is_valid(raise_exception=True)
        config, _ = services.app_config_rollback(actor=request.user, config_id=pk, **body.validated_data)
        config.refresh_from_db()
        return Response(_app_out(config))


# --- provider configurations -------------------------------------------------------------------
class _Choice(serializers.ChoiceField):
    def get_value(self, dictionary):
        if dictionary.get(self.field_name) == "":
            return ""  # an empty enum value is a 400, not "no filter"
        return super().get_value(dictionary)


class ProviderConfigQuery(serializers.Serializer):
    provider_type = _Choice(choices=ProviderType.choices, required=False)


class ProviderConfigList(_Staff):
    @extend_schema(
        operation_id="admin_config_provider_configs_list",
        parameters=[ProviderConfigQuery],
        responses={200: ProviderConfigPage, 400: ERROR, 403: ERROR},
    )
    def get(self, request):
        q = ProviderConfigQuery(data=request.query_params)
        q.is_valid(raise_exception=True)
        rows = ProviderConfiguration.objects.all()
        if q.validated_data.get("provider_type"):
            rows = rows.filter(provider_type=q.validated_data["provider_type"])
        items = [_provider_out(c) for c in rows.order_by("provider_name")]
        return Response({"items": items, "total": len(items)})


class ProviderConfigDetailView(_Staff):
    @extend_schema(
        operation_id="admin_config_provider_configs_get", responses={200: ProviderConfigDetail, 403: ERROR, 404: ERROR}
    )
    def get(self, request, pk: int):
        return Response(_provider_out(_provider_get(pk)))

    @extend_schema(
        operation_id="admin_config_provider_configs_update",
        request=ProviderConfigUpdate,
        responses={200: ProviderConfigOut, 400: ERROR, 403: ERROR, 404: ERROR},
        description="A new version of the provider's configuration (seed 003 §4.5.2).",
    )
    def put(self, request, pk: int):
        body = ProviderConfigUpdate(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        config, _ = services.provider_config_update(
            actor=request.user,
            config_id=pk,
            config_data=data["config_data"],
            activate=data["activate"],
            reason=data["reason"],
            effective_at=data.get("effective_at"),
        )
        return Response(_provider_out(config, detail=False))


class ProviderConfigVersions(_Staff):
    @extend_schema(
        operation_id="admin_config_provider_configs_versions",
        responses={200: VersionOut(many=True), 403: ERROR, 404: ERROR},
        description="Every version, newest first, each with what changed against the one before.",
    )
    def get(self, request, pk: int):
        config = _provider_get(pk)
        return Response(
            _versions_out(
                list(config.versions.all()),
                services.provider_versions_diff,
                lambda v: services.provider_data_shown(v.config_data, v.secret_data),
            )
        )


class ProviderConfigRollback(_Staff):
    @extend_schema(
        operation_id="admin_config_provider_configs_rollback",
        request=RollbackIn,
        responses={200: ProviderConfigOut, 400: ERROR, 403: ERROR, 404: ERROR},
        description="Put an earlier version in force again, as a new version.",
    )
    def post(self, request, pk: int):
        body = RollbackIn(data=request.data)
        body.is_valid(raise_exception=True)
        config, _ = services.provider_config_rollback(actor=request.user, config_id=pk, **body.validated_data)
        return Response(_provider_out(config, detail=False))


# --- what is in force --------------------------------------------------------------------------
def key_rows() -> list[dict]:
    rows = []
    for key in KEYS.values():
        value, source = config_source(key.name)
        if key.secret:
            from config.crypto import fingerprint

            value = {"fingerprint": fingerprint(value)} if value else None
        rows.append(
            {
                "name": key.name,
                "type": key.type,
                "category": key.category,
                "provider": key.provider,
                "field": key.field,
                "secret": key.secret,
                "role": key.role,
                "description": key.description,
                "value": value,
                "source": source,
            }
        )
    return rows


class KeyList(_Staff):
    @extend_schema(
        operation_id="admin_config_keys",
        responses={200: KeyOut(many=True), 403: ERROR},
        description="Every runtime key: type, who may change it, and the value this process has in force.",
    )
    def get(self, request):
        return Response(key_rows())
