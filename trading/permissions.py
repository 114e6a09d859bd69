"""Reusable permission classes and the ownership mixin for user-scoped endpoints.

    class OrderList(OwnedQuerysetMixin, generics.ListCreateAPIView):
        owner_field = "user"                      # or "account__user"
        permission_classes = [IsAuthenticated, HasScope("trade")]
        queryset = Order.objects.all()

`OwnedQuerysetMixin` narrows `get_queryset()` to the caller's rows, so another user's id is a
404 (never a 403 that would confirm it exists). `HasScope("trade")` lets safe methods through
with the `read` scope and needs `trade` for writes; service keys carry only the scopes they
were given, people signed in (Bearer or session) hold `read` and `trade` on their own account.
`IsStaff` is for operator endpoints and refuses service keys whatever user they act as."""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission

from trading.models import ApiKey
from trading.tokens import AccessToken, user_permissions


def request_scopes(request) -> frozenset[str]:
    """The scopes this request holds, whichever way it authenticated."""
    user = getattr(request, "user", None)
    if not (user and user.is_authenticated and user.is_active):
        return frozenset()
    auth = getattr(request, "auth", None)
    if isinstance(auth, ApiKey):
        return frozenset(auth.scopes)
    if isinstance(auth, AccessToken):
        return auth.scopes
    return frozenset(user_permissions(user))  # session (admin / browsable API)


class IsActiveUser(BasePermission):
    message = "Authentication required."

    def has_permission(self, request, view):
        user = request.user
        return bool(user and user.is_authenticated and user.is_active)


class IsStaff(IsActiveUser):
    """Operators only: a staff user signed in as a person (not through a service key)."""

    message = "Staff only."

    def has_permission(self, request, view):
        return (
            super().has_permission(request, view)
            and request.user.is_staff
            and not isinstance(getattr(request, "auth", None), ApiKey)
        )


class _ScopePermission(IsActiveUser):
    write_scopes: frozenset[str] = frozenset()
    read_scopes: frozenset[str] = frozenset({"read"})
    message = "This credential lacks the scope for this operation."

    def has_permission(self, request, view):
        if not super().has_permission(request, view):
            return False
        needed = self.read_scopes if request.method in SAFE_METHODS else self.write_scopes
        return needed <= request_scopes(request)


def HasScope(*write_scopes: str, read: str | None = "read") -> type[BasePermission]:
    """A permission class: writes need every scope in `write_scopes`, safe methods need `read`
    (or nothing when `read=None`). Use as `permission_classes = [HasScope("trade")]`."""
    name = "HasScope_" + "_".join(write_scopes)
    return type(
        name,
        (_ScopePermission,),
        {"write_scopes": frozenset(write_scopes), "read_scopes": frozenset({read} if read else ())},
    )


class OwnedQuerysetMixin:
    """Scope a generic view's queryset to the requesting user (`owner_field`, default "user").
    Staff see only their own rows too: operator views are separate, staff-only endpoints."""

    owner_field = "user"

    def get_queryset(self):
        qs = super().get_queryset()
        user = self.request.user
        if not (user and user.is_authenticated):
            return qs.none()
        return qs.filter(**{self.owner_field: user})
