"""Roles and control rows, kept present after every `migrate` (and every test-database flush).

The data migration `0006_roles_and_control_rows` creates them on a fresh deploy; this
post_migrate hook re-asserts them idempotently: it creates what is missing (groups, their
permissions, disarmed control rows) and never changes a row that exists."""

from __future__ import annotations

from django.apps import apps as global_apps
from django.utils import timezone

VIEWER, OPERATOR, RISK_ADMIN = "viewer", "operator", "risk_admin"
OPERATOR_PERMS = ("arm_controlstate", "pause_controlstate", "force_close_position")
RISK_ADMIN_PERMS = ("add_risklimit", "change_risklimit", "change_tradingstate", "halt_all", "pause_controlstate")
# treasury permissions per role: operators request, approve (four eyes), cancel liquidity actions,
# refresh inventory and freeze withdrawals; risk admins keep the withdrawal allowlist.
TREASURY_PERMS = {
    OPERATOR: (
        "add_liquidityaction",
        "change_liquidityaction",
        "approve_liquidityaction",
        "freeze_withdrawals",
        "refresh_inventory",
    ),
    RISK_ADMIN: ("add_allowlistentry", "change_allowlistentry", "freeze_withdrawals"),
}
# runtime configuration per role: operators change provider and operational keys, risk admins
# the risk defaults (configuration/registry.py says which key needs which)
CONFIGURATION_PERMS = {
    OPERATOR: ("change_operational_config",),
    RISK_ADMIN: ("change_risk_config",),
}
VIEW_APPS = (
    "trading",
    "providers",
    "delegations",
    "treasury",
    "webhooks",
    "configuration",
    "solver",
    "deposits",
    "django_celery_beat",
)
COMPONENTS = (
    "executor:paper",
    "executor:ostium",
    "executor:near_intents",
    "near_intents:ingest",
    "strategy:near_intents",
    "treasury:withdrawals",
    "signer:ostium",
    "deposits:relay",
    "treasury:swaps",
    "delegations:relay",
)


def roles_and_rows_ensure(apps=global_apps) -> None:
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        if app_config.label in (*VIEW_APPS, "auth"):
            create_permissions(app_config, verbosity=0)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    view = list(Permission.objects.filter(content_type__app_label__in=VIEW_APPS, codename__startswith="view_"))
    trading_perms = Permission.objects.filter(content_type__app_label="trading")
    treasury_perms = Permission.objects.filter(content_type__app_label="treasury")
    configuration_perms = Permission.objects.filter(content_type__app_label="configuration")
    for name, extra in ((VIEWER, ()), (OPERATOR, OPERATOR_PERMS), (RISK_ADMIN, RISK_ADMIN_PERMS)):
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.add(
            *view,
            *trading_perms.filter(codename__in=extra),
            *treasury_perms.filter(codename__in=TREASURY_PERMS.get(name, ())),
            *configuration_perms.filter(codename__in=CONFIGURATION_PERMS.get(name, ())),
        )
    ControlState = apps.get_model("trading", "ControlState")
    for component in COMPONENTS:
        ControlState.objects.get_or_create(
            component=component,
            defaults={
                "armed": False,
                "reason": "initial state: disarmed on deploy",
                "changed_by": "migration",
                "changed_at": timezone.now(),
            },
        )


def on_post_migrate(sender, using="default", **kwargs):
    from django.db import DEFAULT_DB_ALIAS

    if using != DEFAULT_DB_ALIAS:
        return
    roles_and_rows_ensure()
