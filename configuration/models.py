"""Runtime configuration in the database (seed 003 §3.2): one head row per key or provider, in
force now, and an append-only history of versions behind it. A change never overwrites: it adds
a version, which the head then mirrors (at once, or at its `effective_at`). Secret values are
Fernet tokens (`config.crypto`), in the head and in every version."""

from __future__ import annotations

from django.db import models


class ConfigType(models.TextChoices):
    STRING = "string"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    JSON = "json"


class ProviderType(models.TextChoices):
    TRADING = "trading"
    PRICE = "price"
    SETTLEMENT = "settlement"
    SWAP = "swap"
    WALLET = "wallet"


class VersionStatus(models.TextChoices):
    SCHEDULED = "scheduled"  # waits for its effective_at (applied by Beat)
    APPLIED = "applied"  # was (or is) in force
    CANCELLED = "cancelled"


class AppConfiguration(models.Model):
    config_key = models.CharField(max_length=100, unique=True)
    config_value = models.TextField(blank=True, help_text="JSON text of the value; a Fernet token when encrypted")
    config_type = models.CharField(max_length=10, choices=ConfigType.choices)
    category = models.CharField(max_length=50, db_index=True)
    description = models.TextField(blank=True, null=True)
    is_encrypted = models.BooleanField(default=False)
    is_active = models.BooleanField(default=False, help_text="off: the environment or the code default applies")
    version = models.PositiveIntegerField(default=0, help_text="the version in force (0: none yet)")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("category", "config_key")
        permissions = [
            ("change_operational_config", "Can change operational runtime configuration"),
            ("change_risk_config", "Can change risk runtime configuration"),
        ]

    def __str__(self) -> str:
        return self.config_key


class AppConfigurationVersion(models.Model):
    config = models.ForeignKey(AppConfiguration, on_delete=models.PROTECT, related_name="versions")
    version = models.PositiveIntegerField()
    config_value = models.TextField(blank=True)
    is_active = models.BooleanField(default=True)
    status = models.CharField(max_length=10, choices=VersionStatus.choices)
    effective_at = models.DateTimeField()
    applied_at = models.DateTimeField(null=True, blank=True)
    rollback_of = models.PositiveIntegerField(null=True, blank=True)
    reason = models.TextField()
    actor = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("config_id", "-version")
        constraints = [models.UniqueConstraint(fields=("config", "version"), name="app_config_version_unique")]
        indexes = [
            models.Index(
                fields=("effective_at",), name="app_config_version_due", condition=models.Q(status="scheduled")
            )
        ]

    def __str__(self) -> str:
        return f"{self.config.config_key} v{self.version}"


class ProviderConfiguration(models.Model):
    provider_name = models.CharField(max_length=50, unique=True)
    provider_type = models.CharField(max_length=12, choices=ProviderType.choices)
    config_data = models.JSONField(default=dict, blank=True, help_text="the fields in force, secrets excluded")
    secret_data = models.JSONField(default=dict, blank=True, help_text="secret fields: Fernet tokens")
    is_active = models.BooleanField(default=True, help_text="off: every field from the environment or code")
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("provider_name",)

    def __str__(self) -> str:
        return self.provider_name


class ProviderConfigurationVersion(models.Model):
    config = models.ForeignKey(ProviderConfiguration, on_delete=models.PROTECT, related_name="versions")
    version = models.PositiveIntegerField()
    config_data = models.JSONField(default=dict, blank=True)
    secret_data = models.JSONField(default=dict, blank=True)
    is_active = models.BooleanField(default=True)
    status = models.CharField(max_length=10, choices=VersionStatus.choices)
    effective_at = models.DateTimeField()
    applied_at = models.DateTimeField(null=True, blank=True)
    rollback_of = models.PositiveIntegerField(null=True, blank=True)
    reason = models.TextField()
    actor = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("config_id", "-version")
        constraints = [models.UniqueConstraint(fields=("config", "version"), name="provider_config_version_unique")]
        indexes = [
            models.Index(
                fields=("effective_at",), name="provider_config_version_due", condition=models.Q(status="scheduled")
            )
        ]

    def __str__(self) -> str:
        return f"{self.config.provider_name} v{self.version}"
