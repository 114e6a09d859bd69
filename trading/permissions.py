"""Permission classes and the ownership mixin for user-scoped endpoints.

Authorisation is deny by default: `ScopeByMethod` is DRF's DEFAULT_PERMISSION_CLASSES. Every
API view without permission classes of its own needs an active, authenticated user holding
`read` for safe methods (GET, HEAD, OPTIONS) and `trade` for writes. A view that needs anything
else says so explicitly:

    class WalletList(OwnedQuerysetMixin, generics.ListCreateAPIView):
        permission_classes = [HasScope("account")]   # writes need `account` (reads `read`)
        owner_field = "user"                         # or "account__user"
        queryset = Wallet.objects.all()

    permission_classes = [IsStaff]                   # operator endpoints
    permission_classes = [AllowAny]                  # sign-in doors only

`OwnedQuerysetMixin` narrows `get_queryset()` to the caller's rows, so another user's id is a
404 (never a 403 that would confirm it exists). Service keys carry only the scopes they were
given (`read` and/or `trade`); people signed in (Bearer or session) hold `read`, `trade` and
`account` on their own account. `IsStaff` is for operator endpoints and refuses service keys
whatever user they act as. tests/test_route_permissions.py holds the expected answer of every
route, method and credential."""

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


class ScopeByMethod(_ScopePermission):
    """The default permission: safe methods need `read`, writes need `trade`."""

    write_scopes = frozenset({"trade"})


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
