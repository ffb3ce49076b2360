"""Query cost: every operation is priced before it runs, and refused over its budget.

Depth, alias and token limits bound a document's shape, not its work: one `calendar` of two
years for every hotel asks for hundreds of thousands of cells in a few lines. So, in the manner of
Shopify's and GitHub's GraphQL APIs, each operation gets a static cost from its document and
variables, before any resolver runs:

- an object field costs 1, a scalar 0, a `Series` (parallel arrays) 1 per SERIES_NIGHTS nights;
- a list multiplies what it holds by its size: `first` for connections (DEFAULT_PAGE without it),
  the ids sent for bulk mutations, the nights of a calendar or a block's grid, the room types of
  a calendar (ROOM_TYPES_ESTIMATE when `roomTypeIds` is not given), and LIST_ESTIMATE for lists
  nothing bounds (a cell's bookings, the hotels).

An operation over GRAPHQL_MAX_COST is refused with `extensions.code = QUERY_TOO_COSTLY`, its cost
and the limit; every answer carries `extensions.cost` = {requested, limit}.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLList,
    GraphQLNamedType,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    get_named_type,
    get_nullable_type,
    value_from_ast_untyped,
)
from strawberry.extensions import SchemaExtension

from app.services.hardblocks import MAX_BLOCK_NIGHTS
from app.services.pages import DEFAULT_PAGE

SERIES_NIGHTS = 50
ROOM_TYPES_ESTIMATE = 20
LIST_ESTIMATE = 10


def _nights(arguments: dict[str, Any], default: int) -> int:
    try:
        start, end = date.fromisoformat(arguments["from"]), date.fromisoformat(arguments["to"])
    except (KeyError, TypeError, ValueError):  # absent or malformed: the resolver will say which
        return default
    return max((end - start).days, 0)


def _size(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else default


class _Pricer:
    def __init__(self, schema: Any, fragments: dict[str, FragmentDefinitionNode], variables: dict[str, Any]) -> None:
        self.schema, self.fragments, self.variables = schema, fragments, variables

    def selections(self, parent: GraphQLNamedType, selection_set: SelectionSetNode, scope: dict[str, int]) -> int:
        total = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                total += self.field(parent, selection, scope)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                kind = self.schema.get_type(condition.name.value) if condition else parent
                total += self.selections(kind or parent, selection.selection_set, scope)
            elif isinstance(selection, FragmentSpreadNode):  # validation refused cycles and unknown names
                fragment = self.fragments[selection.name.value]
                kind = self.schema.get_type(fragment.type_condition.name.value)
                total += self.selections(kind or parent, fragment.selection_set, scope)
        return total

    def field(self, parent: GraphQLNamedType, node: FieldNode, scope: dict[str, int]) -> int:
        definition = getattr(parent, "fields", {}).get(node.name.value)
        if definition is None:  # __typename, introspection
            return 0
        kind = get_named_type(definition.type)
        arguments = {a.name.value: value_from_ast_untyped(a.value, self.variables) for a in node.arguments or ()}
        name = f"{parent.name}.{node.name.value}"
        scope = self._scope(name, kind, arguments, scope)
        if node.selection_set is None:
            return _nights_cost(scope) if kind.name == "Series" else 0
        inner = self.selections(kind, node.selection_set, scope)
        count = self._count(name, arguments, scope) if isinstance(get_nullable_type(definition.type), GraphQLList) \
            else 1
        return count * (1 + inner)

    @staticmethod
    def _scope(name: str, kind: GraphQLNamedType, arguments: dict[str, Any], scope: dict[str, int]) -> dict[str, int]:
        """What lists further down are sized by."""
        if name in ("Hotel.calendar", "Subscription.availabilityChanged"):
            ids = arguments.get("roomTypeIds")
            return {**scope, "nights": _nights(arguments, 0),
                    "rows": len(ids) if isinstance(ids, list) else ROOM_TYPES_ESTIMATE}
        if name in ("Hardblock.grid", "Hardblock.gridSeries"):
            return {**scope, "nights": _nights(arguments, MAX_BLOCK_NIGHTS)}
        if kind.name.endswith("Connection"):
            return {**scope, "page": _size(arguments.get("first"), DEFAULT_PAGE)}
        return scope

    @staticmethod
    def _count(name: str, arguments: dict[str, Any], scope: dict[str, int]) -> int:
        if name == "Calendar.rows":
            return scope.get("rows", ROOM_TYPES_ESTIMATE)
        if name in ("CalendarRow.cells", "Hardblock.grid"):
            return scope.get("nights", MAX_BLOCK_NIGHTS)
        if name == "AvailabilityChange.cells":
            return scope.get("nights", 0) * scope.get("rows", ROOM_TYPES_ESTIMATE)
        if name.endswith("Connection.edges"):
            return scope.get("page", DEFAULT_PAGE)
        if isinstance(arguments.get("ids"), list):
            return len(arguments["ids"])
        return LIST_ESTIMATE


def _nights_cost(scope: dict[str, int]) -> int:
    return 1 + scope.get("nights", MAX_BLOCK_NIGHTS) // SERIES_NIGHTS


def operation_cost(schema: Any, document: Any, operation_name: str | None, variables: dict[str, Any] | None) -> int:
    """The static cost of the operation the request runs (0 when there is none to pick)."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    chosen = [o for o in operations if operation_name is None or (o.name and o.name.value == operation_name)]
    if len(chosen) != 1:
        return 0
    operation = chosen[0]
    root = schema.get_root_type(operation.operation)
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    return _Pricer(schema, fragments, variables or {}).selections(root, operation.selection_set, {})


class QueryCost(SchemaExtension):
    """Prices each operation after validation; refuses it before execution when over the limit."""

    def __init__(self, *, limit: int) -> None:
        self.limit = limit
        self.cost: int | None = None

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        if context.graphql_document is not None:
            self.cost = operation_cost(context.schema._schema, context.graphql_document,  # noqa: SLF001
                                       context.operation_name, context.variables)
            if self.cost > self.limit:
                raise GraphQLError(
                    f"This query would cost {self.cost} and the limit is {self.limit}: ask for fewer nights, "
                    "room types or items per page, or split it.",
                    extensions={"code": "QUERY_TOO_COSTLY", "cost": self.cost, "limit": self.limit},
                )
        yield

    def get_results(self) -> dict[str, Any]:
        return {} if self.cost is None else {"cost": {"requested": self.cost, "limit": self.limit}}
