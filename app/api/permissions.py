"""Role scoping, the primary access model: checked on every root field before it resolves."""

from __future__ import annotations

import logging
from typing import Any

import strawberry
from strawberry.exceptions import StrawberryGraphQLError
from strawberry.permission import BasePermission

from app.auth import Principal, Role
from app.api.context import Context

Info = strawberry.Info[Context, None]

log = logging.getLogger(__name__)

UNAUTHENTICATED_MESSAGE = "Authentication required: send 'Authorization: Bearer <Firebase ID token>'"


def require_principal(context: Context, info: Info | None = None) -> Principal:
    """The caller, or a top-level UNAUTHENTICATED error that says what was wrong with the token."""
    if context.principal is None:
        reason = f"unauthenticated ({context.auth_error.reason})" if context.auth_error else "unauthenticated (no token)"
        log_refusal(context, info, reason)
        message = context.auth_error.message if context.auth_error else UNAUTHENTICATED_MESSAGE
        raise StrawberryGraphQLError(message, extensions={"code": "UNAUTHENTICATED"})
    return context.principal


def log_refusal(context: Context, info: Info | None, reason: str) -> None:
    """Who was refused what, and why; never their token."""
    principal = context.principal
    operation = field = None
    if info is not None:
        operation = f"{info.operation.operation.value} {info.operation.name.value if info.operation.name else '-'}"
        field = f"{info.path.typename}.{info.field_name}"
    log.info("access refused: request %s (client id %s), uid %s, role %s, %s, field %s: %s", context.request_id,
             context.client_request_id, principal.uid if principal else None,
             principal.role.value if principal else None, operation, field, reason)


class _RoleRequired(BasePermission):
    roles: tuple[Role, ...] = tuple(Role)
    error_extensions = {"code": "FORBIDDEN"}

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        # Permission instances are shared by all requests: keep them stateless.
        allowed = require_principal(info.context, info).role in self.roles
        if not allowed:
            log_refusal(info.context, info, f"needs role {' or '.join(role.value for role in self.roles)}")
        return allowed


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
