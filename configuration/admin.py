"""Runtime configuration in the admin: app keys and provider configurations, each change a new
version through `configuration.services` with a required reason; the version history inline,
rollback to a version (with a reason) and a diff between two versions. Secrets are write-only:
their fields are empty password inputs and every page shows a fingerprint."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from config.errors import ApplicationError
from configuration import services
from configuration.models import (
    AppConfiguration,
    AppConfigurationVersion,
    ProviderConfiguration,
    ProviderConfigurationVersion,
)
from configuration.registry import APP_KEYS, PERMISSIONS, PROVIDERS, InvalidValue
from trading.admin_panel.forms import ConfirmActionForm


def _shown(value) -> str:
    if isinstance(value, dict) and "fingerprint" in value:
        return f"secret, fingerprint {value['fingerprint']}"
    return "" if value is None else json.dumps(value) if not isinstance(value, str) else value


def _may_change(user) -> bool:
    return any(user.has_perm(p) for p in PERMISSIONS.values())


class _ChangeFields(forms.ModelForm):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2, "cols": 60}), help_text="Why? On the ledger.")
    effective_at = forms.DateTimeField(
        required=False, help_text="Optional, UTC (YYYY-MM-DD HH:MM): the change waits until then."
    )

    def clean_reason(self):
        reason = self.cleaned_data["reason"].strip()
        if len(reason) < 3:
            raise forms.ValidationError("Give a reason (at least 3 characters).")
        return reason


def _key_choices() -> list:
    """The keys an operator may add, grouped by category, each with what it does and what is in
    force now (and from where): the bare names told an operator neither. A key that already has
    its row is changed on that row, so it is not offered here."""
    from configuration.runtime import config_source

    stored = set(AppConfiguration.objects.values_list("config_key", flat=True))
    groups: dict[str, list] = {}
    for name in sorted(set(APP_KEYS) - stored):
        key = APP_KEYS[name]
        value, source = config_source(name)
        if key.secret:
            now = "a secret"
        elif value in ("", None):
            now = "empty"
        else:
            now = json.dumps(value, default=str) if key.type == "json" else value
        label = f"{name}: {key.description} (now {now}, from the {source})"
        groups.setdefault(key.category, []).append((name, label))
    return sorted(groups.items())


class AppConfigurationForm(_ChangeFields):
    config_key = forms.ChoiceField(choices=_key_choices)
    config_value = forms.CharField(
        required=False, help_text="As the environment writes it (JSON for json keys); empty keeps a secret."
    )
    is_active = forms.BooleanField(required=False, initial=True, help_text="Off: the environment applies.")

    class Meta:
        model = AppConfiguration
        fields: list[str] = []

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        config = self.instance if self.instance.pk else None
        if config is not None:
            del self.fields["config_key"]
            self.fields["is_active"].initial = config.is_active
            key = APP_KEYS.get(config.config_key)
            if key and key.secret:
                self.fields["config_value"].widget = forms.PasswordInput(render_value=False)
            elif config.version:
                self.fields["config_value"].initial = config.config_value

    def clean(self):
        data = super().clean()
        name = self.instance.config_key if self.instance.pk else data.get("config_key")
        key = APP_KEYS.get(name or "")
        if key is None:
            return data
        if not self.user.has_perm(key.permission):
            raise forms.ValidationError(f"You may not change {key.name} ({key.permission}).")
        raw = data.get("config_value", "")
        if raw == "" and (key.secret or not self.instance.pk) and not (self.instance.pk and self.instance.version):
            self.add_error("config_value", "A value is required.")
        elif raw != "":
            try:
                key.clean(raw)
            except InvalidValue as exc:
                self.add_error("config_value", f"{key.name} {exc}.")
        return data


class ProviderConfigurationForm(_ChangeFields):
    activate = forms.BooleanField(required=False, initial=True, help_text="Off: every field from the environment.")

    class Meta:
        model = ProviderConfiguration
        fields: list[str] = []

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        config = self.instance
        self.spec = PROVIDERS.get(config.provider_name)
        self.fields["activate"].initial = config.is_active
        for name, key in self.spec.fields.items() if self.spec else ():
            help_text = f"{key.description} Empty: {key.name} from the environment."
            if key.secret:
                field = forms.CharField(
                    required=False,
                    widget=forms.PasswordInput(render_value=False),
                    help_text=f"{key.description} Write-only: empty keeps the stored secret.",
                )
                self.fields[f"clear_{name}"] = forms.BooleanField(
                    required=False, label=f"Clear {name}", help_text=f"Remove the stored {name}."
                )
            elif key.type == "bool":
                field = forms.NullBooleanField(required=False, help_text=help_text)
            else:
                field = forms.CharField(required=False, help_text=help_text)
            value = (config.config_data or {}).get(name)
            if not key.secret and value is not None:
                field.initial = value if key.type in ("bool", "string") else json.dumps(value)
            self.fields[f"field_{name}"] = field

    def config_data(self) -> dict:
        data = {}
        for name, key in self.spec.fields.items():
            raw = self.cleaned_data.get(f"field_{name}")
            if key.secret:
                if self.cleaned_data.get(f"clear_{name}"):
                    data[name] = None
                elif raw:
                    data[name] = raw
            elif raw in (None, ""):
                data[name] = None
            else:
                data[name] = raw
        return data

    def clean(self):
        data = super().clean()
        if not self.user.has_perm(PERMISSIONS["operator"]):
            raise forms.ValidationError("You may not change provider configurations.")
        if self.spec is None:
            return data
        for name, raw in self.config_data().items():
            if raw is not None:
                try:
                    self.spec.fields[name].clean(raw)
                except InvalidValue as exc:
                    self.add_error(f"field_{name}", str(exc))
        return data


class _ConfigAdmin(admin.ModelAdmin):
    service_rollback = None
    versions_diff = None
    version_model = None

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return _may_change(request.user)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        user = request.user

        class WithUser(form):
            def __init__(self, *args, **kw):
                super().__init__(*args, user=user, **kw)

        return WithUser

    def get_urls(self):
        info = self.model._meta.app_label, self.model._meta.model_name
        return [
            path(
                "<int:pk>/rollback/<int:version>/",
                self.admin_site.admin_view(self.rollback_view),
                name="{}_{}_rollback".format(*info),
            ),
            path("<int:pk>/diff/", self.admin_site.admin_view(self.diff_view), name="{}_{}_diff".format(*info)),
            *super().get_urls(),
        ]

    def _change_url(self, pk):
        return reverse(f"admin:{self.model._meta.app_label}_{self.model._meta.model_name}_change", args=[pk])

    def rollback_view(self, request, pk: int, version: int):
        if not self.has_change_permission(request):
            raise PermissionDenied
        config = get_object_or_404(self.model, pk=pk)
        form = ConfirmActionForm(request.POST or None, allow_expiry=False)
        if request.method == "POST" and form.is_valid():
            try:
                type(self).service_rollback(
                    actor=request.user, config_id=config.pk, version=version, reason=form.cleaned_data["reason"]
                )
            except ApplicationError as exc:
                self.message_user(request, exc.message, messages.ERROR)
            else:
                self.message_user(request, f"{config} rolled back to version {version} (as a new version).")
            return redirect(self._change_url(config.pk))
        return TemplateResponse(
            request,
            "admin/trading/confirm_action.html",
            {
                **self.admin_site.each_context(request),
                "title": f"Roll back to version {version}",
                "help_text": "The version's values are put in force again, as a new version.",
                "form": form,
                "targets": [f"{config} (now version {config.version})"],
                "danger": True,
                "cancel_url": self._change_url(config.pk),
            },
        )

    def diff_view(self, request, pk: int):
        if not self.has_view_permission(request):
            raise PermissionDenied
        config = get_object_or_404(self.model, pk=pk)
        versions = {v.version: v for v in self.version_model.objects.filter(config=config)}
        numbers = sorted(versions)

        def pick(name, default):
            try:
                value = int(request.GET.get(name, default))
            except ValueError:
                value = default
            return value if value in versions else default

        b = pick("b", numbers[-1])
        a = pick("a", numbers[-2] if len(numbers) > 1 else numbers[-1])
        for v in versions.values():
            v.config = config
        changes = type(self).versions_diff(versions[a], versions[b])
        rows = [(name, {"before": _shown(c["before"]), "after": _shown(c["after"])}) for name, c in changes.items()]
        return TemplateResponse(
            request,
            "admin/configuration/diff.html",
            {
                **self.admin_site.each_context(request),
                "title": f"{config}: version {a} → {b}",
                "target": str(config),
                "back_url": self._change_url(config.pk),
                "versions": numbers,
                "a": a,
                "b": b,
                "changes": rows,
            },
        )

    def version_shown(self, config, version) -> str:
        raise NotImplementedError

    @admin.display(description="versions")
    def history_table(self, config):
        if not config.pk:
            return ""
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    v.version,
                    v.status,
                    "on" if v.is_active else "off",
                    self.version_shown(config, v),
                    v.effective_at.strftime("%Y-%m-%d %H:%M:%S"),
                    f"rollback of v{v.rollback_of}" if v.rollback_of else "",
                    v.reason,
                    v.actor,
                )
                for v in self.version_model.objects.filter(config=config).order_by("-version")
            ),
        )
        return format_html(
            '<table class="td-config-versions"><thead><tr><th>version</th><th>status</th><th>active</th>'
            "<th>value</th><th>effective</th><th></th><th>reason</th><th>by</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    @admin.display(description="history")
    def history_links(self, config):
        if not config.pk:
            return ""
        base = self._change_url(config.pk)
        numbers = list(self.version_model.objects.filter(config=config).values_list("version", flat=True))
        rollbacks = format_html_join(
            " ", '<a href="{}../rollback/{}/">v{}</a>', ((base, n, n) for n in sorted(numbers) if n != config.version)
        )
        return format_html('<a href="{}../diff/">compare versions</a> · roll back to: {}', base, rollbacks or "—")


@admin.register(AppConfiguration)
class AppConfigurationAdmin(_ConfigAdmin):
    form = AppConfigurationForm
    list_display = ("config_key", "category", "config_type", "shown_value", "is_active", "version", "updated_at")
    list_filter = ("category", "is_active")
    search_fields = ("config_key",)
    readonly_fields = (
        "category",
        "config_type",
        "is_encrypted",
        "version",
        "shown_value",
        "history_links",
        "history_table",
    )
    service_rollback = staticmethod(services.app_config_rollback)
    versions_diff = staticmethod(services.app_versions_diff)
    version_model = AppConfigurationVersion

    def has_add_permission(self, request):
        return _may_change(request.user)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("config_key", "config_value", "is_active", "effective_at", "reason")
        return (
            "shown_value",
            "category",
            "config_type",
            "is_encrypted",
            "version",
            "history_links",
            "config_value",
            "is_active",
            "effective_at",
            "reason",
            "history_table",
        )

    def version_shown(self, config, version) -> str:
        return _shown(services.app_value_shown(config, value_text=version.config_value))

    @admin.display(description="value in force")
    def shown_value(self, config):
        return _shown(services.app_value_shown(config)) if config.version else "(none yet)"

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        common = {"actor": request.user, "reason": data["reason"], "effective_at": data.get("effective_at")}
        raw = data.get("config_value", "")
        if change:
            config, _ = services.app_config_update(
                config_id=obj.pk,
                config_value=raw if raw != "" else services.UNSET,
                is_active=data.get("is_active", False),
                **common,
            )
        else:
            config, _ = services.app_config_create(
                config_key=data["config_key"], config_value=raw, is_active=data.get("is_active", False), **common
            )
        obj.pk = config.pk
        obj.refresh_from_db()

    def save_related(self, request, form, formsets, change):
        pass  # the versions are written by the service

    def log_addition(self, request, obj, message):
        pass  # the ledger has it (config.changed)

    log_change = log_addition


@admin.register(ProviderConfiguration)
class ProviderConfigurationAdmin(_ConfigAdmin):
    form = ProviderConfigurationForm
    list_display = ("provider_name", "provider_type", "shown_data", "is_active", "version", "updated_at")
    list_filter = ("provider_type", "is_active")
    readonly_fields = ("provider_name", "provider_type", "version", "shown_data", "history_links", "history_table")
    service_rollback = staticmethod(services.provider_config_rollback)
    versions_diff = staticmethod(services.provider_versions_diff)
    version_model = ProviderConfigurationVersion

    def has_add_permission(self, request):
        return False  # one row per registered provider (configuration/registry.py)

    def get_fields(self, request, obj=None):
        form = self.form(instance=obj, user=request.user)
        dynamic = [name for name in form.fields if name.startswith(("field_", "clear_"))]
        return (
            "provider_name",
            "provider_type",
            "version",
            "shown_data",
            "history_links",
            *dynamic,
            "activate",
            "effective_at",
            "reason",
            "history_table",
        )

    def version_shown(self, config, version) -> str:
        return _shown(services.provider_data_shown(version.config_data, version.secret_data))

    def get_form(self, request, obj=None, change=False, **kwargs):
        user = request.user
        base = self.form

        class WithUser(base):
            def __init__(self, *args, **kw):
                super().__init__(*args, user=user, **kw)

        return WithUser

    @admin.display(description="in the database")
    def shown_data(self, config):
        return _shown(services.provider_data_shown(config.config_data, config.secret_data))

    def save_model(self, request, obj, form, change):
        config, _ = services.provider_config_update(
            actor=request.user,
            config_id=obj.pk,
            config_data=form.config_data(),
            activate=form.cleaned_data.get("activate", False),
            reason=form.cleaned_data["reason"],
            effective_at=form.cleaned_data.get("effective_at"),
        )
        obj.refresh_from_db()

    def save_related(self, request, form, formsets, change):
        pass

    def log_change(self, request, obj, message):
        pass
