"""Bench-only authentication (kept apart from the views: DRF imports it while loading its settings)."""

from django.contrib.auth import get_user_model
from rest_framework import authentication, exceptions


class BenchUserAuthentication(authentication.BaseAuthentication):
    """`X-Bench-User: <id>` → that user (one query, like a token look-up)."""

    def authenticate(self, request):
        raw = request.headers.get("X-Bench-User")
        if not raw:
            return None
        user = get_user_model().objects.filter(pk=int(raw), is_active=True).first()
        if user is None:
            raise exceptions.AuthenticationFailed("unknown bench user")
        return (user, None)
