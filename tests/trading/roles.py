"""Users in the role groups the migration creates (viewer / operator / risk_admin)."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

PASSWORD = "pw-Role-12345!"


def user_in(group: str, username: str | None = None):
    user = get_user_model().objects.create_user(
        username=username or group, email=f"{username or group}@example.com", password=PASSWORD, is_staff=True
    )
    user.groups.add(Group.objects.get(name=group))
    return get_user_model().objects.get(pk=user.pk)  # fresh: no stale permission cache
