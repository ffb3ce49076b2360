"""Relay global ids in inputs: decoded here so a wrong or foreign id is a clear InvalidInput."""

from __future__ import annotations

from strawberry import relay

from app.api.errors import InvalidInputError
from app.api.types import node_pk


def to_global_id(type_name: str, pk: int) -> str:
    return str(relay.GlobalID(type_name, str(pk)))


def decode_id(value: str, type_name: str, field: str) -> int:
    try:
        global_id = relay.GlobalID.from_id(value)
        pk = node_pk(global_id.node_id)
        if global_id.type_name != type_name or pk is None:
            raise ValueError
        return pk
    except (ValueError, relay.GlobalIDValueError):
        raise InvalidInputError(field, f"{field} must be the id of a {type_name}, got {value!r}") from None


def decode_any(value: str, field: str) -> tuple[str, int]:
    try:
        global_id = relay.GlobalID.from_id(value)
        pk = node_pk(global_id.node_id)
        if pk is None:
            raise ValueError
        return global_id.type_name, pk
    except (ValueError, relay.GlobalIDValueError):
        raise InvalidInputError(field, f"{field} is not a valid id: {value!r}") from None


def filter_pk(value: str, type_name: str) -> int:
    """The primary key a filter argument names; 0 (which matches nothing) for an id that is not a
    `type_name`: a list filtered by an unknown id is empty, not an error."""
    try:
        return decode_id(value, type_name, "id")
    except InvalidInputError:
        return 0
