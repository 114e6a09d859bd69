from django.db import migrations
from django.utils import timezone

# Components that can cause a side effect besides the venue executors (created in 0004).
# Strategy rows appear when a strategy is registered; until then a missing row reads as disarmed.
COMPONENTS = ("treasury:withdrawals", "signer:ostium")

VIEWER = "viewer"
OPERATOR = "operator"
RISK_ADMIN = "risk_admin"

OPERATOR_PERMS = ("arm_controlstate", "pause_controlstate", "force_close_position")
RISK_ADMIN_PERMS = (
    "add_risklimit",
    "change_risklimit",
    "change_tradingstate",
    "halt_all",
    "pause_controlstate",
)
VIEW_APPS = ("trading", "providers", "delegations", "treasury", "webhooks", "django_celery_beat")


def create_rows_and_groups(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    # Permissions are normally created after the whole migrate run; the groups need them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None

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

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    view = list(Permission.objects.filter(content_type__app_label__in=VIEW_APPS, codename__startswith="view_"))
    viewer, _ = Group.objects.get_or_create(name=VIEWER)
    viewer.permissions.add(*view)
    operator, _ = Group.objects.get_or_create(name=OPERATOR)
    operator.permissions.add(*view, *Permission.objects.filter(content_type__app_label="trading", codename__in=OPERATOR_PERMS))
    risk_admin, _ = Group.objects.get_or_create(name=RISK_ADMIN)
    risk_admin.permissions.add(
        *view, *Permission.objects.filter(content_type__app_label="trading", codename__in=RISK_ADMIN_PERMS)
    )


def remove_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=[VIEWER, OPERATOR, RISK_ADMIN]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("trading", "0005_operator_permissions"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
        ("providers", "0002_seed_paper_markets"),
    ]
    operations = [migrations.RunPython(create_rows_and_groups, remove_groups)]
