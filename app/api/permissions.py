"""Role scoping, the primary access model: checked on every root field before it resolves."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.exceptions import StrawberryGraphQLError
from strawberry.permission import BasePermission

from app.auth import Principal, Role
from app.api.context import Context

Info = strawberry.Info[Context, None]

UNAUTHENTICATED_MESSAGE = "Authentication required: send 'Authorization: Bearer <Firebase ID token>'"


def require_principal(context: Context) -> Principal:
    """The caller, or a top-level UNAUTHENTICATED error that says what was wrong with the token."""
    if context.principal is None:
        message = context.auth_error.message if context.auth_error else UNAUTHENTICATED_MESSAGE
        raise StrawberryGraphQLError(message, extensions={"code": "UNAUTHENTICATED"})
    return context.principal


class _RoleRequired(BasePermission):
    roles: tuple[Role, ...] = tuple(Role)
    error_extensions = {"code": "FORBIDDEN"}

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        # Permission instances are shared by all requests: keep them stateless.
        return require_principal(info.context).role in self.roles


class IsAuthenticated(_RoleRequired):
    message = UNAUTHENTICATED_MESSAGE


class IsStaff(_RoleRequired):
    message = "Forbidden: this needs the admin or operator role"
    roles = (Role.ADMIN, Role.OPERATOR)


class IsAdmin(_RoleRequired):
    message = "Forbidden: this needs the admin role"
    roles = (Role.ADMIN,)


AUTHENTICATED = [IsAuthenticated]
STAFF = [IsStaff]
ADMIN = [IsAdmin]
