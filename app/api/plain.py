"""Lists of plain data completed without per-field execution.

graphql-core completes every field of every list item on its own: a resolver call, an awaitable
check, a path entry, a leaf completion. For a calendar of 18,250 cells of ten fields that is most
of the request. Yet most of those fields are "basic" in Strawberry's terms (no resolver, no
permission, no extension: the value is the attribute), and so are the objects under them (a
cell's `rate`).

`PlainListExecutor` compiles, once per list field of a validated document, a plan of the
selection over such objects: for each response key (aliases, fragments, @include/@skip already
applied by graphql-core's own `collect_subfields`), the attribute to read and the leaf type's
`serialize`, nested plans for plain objects and lists of them, and `__typename`. A list whose
selection is all plain is completed by the plan; anything else (a field with a resolver, a
null where the type says non-null, a value a scalar refuses, a schema with resolve middleware)
falls back to graphql-core, which then reports errors exactly as it always did. The plan reads
attributes only, so running it and falling back is safe. tests/api/test_plain_lists.py checks on
generated selections that both give the same answers.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter
from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
)
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

Plan = Callable[[Any], Any]


class _NotPlain(Exception):
    """A value the plan cannot complete as graphql-core would: let graphql-core do it."""


_UNPLANNABLE = object()


# Values the built-in scalars' serialize returns unchanged: the exact Python type, in range.
_AS_IS: dict[str, Callable[[Any], bool]] = {
    "Int": lambda value: type(value) is int and -(2**31) <= value < 2**31,
    "Boolean": lambda value: type(value) is bool,
    "String": lambda value: type(value) is str,
}


def _leaf(kind: GraphQLScalarType | GraphQLEnumType, non_null: bool) -> Plan:
    serialize, as_is = kind.serialize, _AS_IS.get(kind.name) if isinstance(kind, GraphQLScalarType) else None

    def complete(value: Any) -> Any:
        if value is None:
            if non_null:
                raise _NotPlain
            return None
        if as_is is not None and as_is(value):
            return value
        serialized = serialize(value)
        if serialized is None:  # graphql-core reports this as an error
            raise _NotPlain
        return serialized
    return complete


def _nullable(plan: Plan, non_null: bool) -> Plan:
    def complete(value: Any) -> Any:
        if value is None:
            if non_null:
                raise _NotPlain
            return None
        return plan(value)
    return complete


def _list_of(plan: Plan, non_null: bool) -> Plan:
    def complete(values: Any) -> Any:
        if values is None:
            if non_null:
                raise _NotPlain
            return None
        if not isinstance(values, (list, tuple)):
            raise _NotPlain
        return [plan(value) for value in values]
    return complete


class PlainListExecutor(StrawberryGraphQLCoreExecutionContext):
    """Completes lists of plain objects with compiled plans (see the module's docstring)."""

    def complete_iterable_value(self, item_type: Any, field_details_list: Any, info: Any, path: Any,
                                items: Any, position_context: Any) -> Any:
        if isinstance(items, (list, tuple)) and items:
            plan = self._list_plan(item_type, field_details_list)
            if plan is not None:
                try:
                    return [plan(item) for item in items]
                except _NotPlain:
                    pass  # graphql-core completes it, and reports what it finds
        return super().complete_iterable_value(item_type, field_details_list, info, path, items, position_context)

    def _list_plan(self, item_type: Any, field_details_list: Any) -> Plan | None:
        plans = self.__dict__.setdefault("_plans", {})
        key = (item_type, id(field_details_list))
        found = plans.get(key)
        if found is None:
            if self.middleware_manager is not None and getattr(self.middleware_manager, "middlewares", None):
                plan = _UNPLANNABLE  # resolve middleware must see every field
            else:
                plan = self._plan(item_type, field_details_list) or _UNPLANNABLE
            # The list is kept alive with its plan, so that its id() is not reused (as collect_subfields does).
            plans[key] = found = (field_details_list, plan)
        plan = found[1]
        return None if plan is _UNPLANNABLE else plan

    def _plan(self, return_type: Any, field_details_list: Any) -> Plan | None:
        """The plan of a value of `return_type` selected by `field_details_list`, or None."""
        non_null = isinstance(return_type, GraphQLNonNull)
        kind = return_type.of_type if non_null else return_type
        if isinstance(kind, GraphQLList):
            item = self._plan(kind.of_type, field_details_list)
            return None if item is None else _list_of(item, non_null)
        if isinstance(kind, (GraphQLScalarType, GraphQLEnumType)):
            return _leaf(kind, non_null)
        if not isinstance(kind, GraphQLObjectType):  # interfaces and unions: graphql-core resolves the type
            return None
        return self._object_plan(kind, field_details_list, non_null)

    def _object_plan(self, kind: GraphQLObjectType, field_details_list: Any, non_null: bool) -> Plan | None:
        collected = self.collect_subfields(kind, field_details_list)
        if collected.new_defer_usages or collected.forbidden_directive_instances:
            return None
        steps: list[tuple[str, Callable[[Any], Any] | None, Plan | str]] = []
        for response_key, sub_fields in collected.grouped_field_set.items():
            name = sub_fields[0].node.name.value
            if name == "__typename":
                steps.append((response_key, None, kind.name))
                continue
            field = kind.fields.get(name)
            definition = field.extensions.get("strawberry-definition") if field is not None else None
            if definition is None or not getattr(field.resolve, "_is_default", False) \
                    or definition.default_resolver is not getattr:
                return None  # a resolver, a permission or an extension: graphql-core runs it
            value_plan = self._plan(field.type, sub_fields)
            if value_plan is None:
                return None
            steps.append((response_key, attrgetter(definition.python_name), value_plan))

        def complete(source: Any) -> dict[str, Any]:
            data = {}
            for response_key, read, value_plan in steps:
                data[response_key] = value_plan if read is None else value_plan(read(source))  # type: ignore[operator]
            return data

        return _nullable(complete, non_null)
