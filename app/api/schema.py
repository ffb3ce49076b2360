"""The Strawberry schema: root types merged from each area, plus the hardening extensions."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import strawberry
from graphql import GraphQLError, build_client_schema, get_introspection_query, print_schema
from graphql import ValidationContext, ValidationRule
from graphql.language import DocumentNode, Node, SelectionSetNode, StringValueNode
from strawberry import relay
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import MaskErrors, MaxAliasesLimiter, ParserCache, QueryDepthLimiter, ValidationCache
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types
from strawberry.types.graphql import OperationType

from app.api.audit import AuditQuery
from app.api.audit_reports import AuditReportMutation, AuditReportQuery
from app.api.bookings import BookingMutation, BookingQuery
from app.api.catalog import CatalogMutation, CatalogQuery, Viewer, viewer
from app.api.context import Context
from app.api.cost import QueryCost
from app.api.errors import HANDLERS
from app.api.hardblocks import HardblockMutation, HardblockQuery
from app.api.inventory import InventoryMutation
from app.api.notify import NotifyMutation, NotifyQuery
from app.api.payments import PaymentMutation
from app.api.pricing import PricingMutation, PricingQuery
from app.api.refunds import RefundMutation
from app.api.reports import ReportQuery
from app.api.permissions import AUTHENTICATED, Info
from app.api.subscriptions import SharedResultsExecutor
from app.api.subscriptions import Subscription as CoreSubscription
from app.api.supply import SupplyMutation, SupplyQuery, SupplySubscription
from app.api.types import SERIES_SCALAR, Series
from app.lru import LRU
from app.services.errors import Forbidden, database_unavailable
from app.settings import Settings

log = logging.getLogger(__name__)


@strawberry.type
class CoreQuery:
    @strawberry.field(permission_classes=AUTHENTICATED, description="Any object by its global id; null when "
                      "it does not exist or the caller may not see it.")
    async def node(self, info: Info, id: strawberry.ID) -> relay.Node | None:
        # Not `relay.node()`: its field extension can be applied to one schema only, and the
        # app builds one schema per settings (tests build development and production ones).
        # `ID`, parsed here: an id that is not a global id names nothing, like any unknown id.
        try:
            return await relay.GlobalID.from_id(id).resolve_node(info, required=False)
        except (relay.GlobalIDValueError, ValueError, NotImplementedError):  # a well-formed id of a type that is not
            return None  # a Node here (NotImplementedError: the Node interface itself)

    @strawberry.field(description="Who the caller is, as the token says.")
    def viewer(self, info: Info) -> Viewer:
        return viewer(info)


Query = merge_types("Query", (CoreQuery, CatalogQuery, AuditQuery, BookingQuery, HardblockQuery, SupplyQuery,
                             PricingQuery, NotifyQuery, ReportQuery, AuditReportQuery))
Mutation = merge_types("Mutation", (CatalogMutation, InventoryMutation, BookingMutation, HardblockMutation,
                                    SupplyMutation, PricingMutation, NotifyMutation, AuditReportMutation,
                                    PaymentMutation, RefundMutation))
Subscription = merge_types("Subscription", (CoreSubscription, SupplySubscription))


def _mask(error: GraphQLError) -> bool:
    """Hide unexpected exceptions only: GraphQL, permission and validation errors stay readable."""
    original = error.original_error
    return original is not None and not isinstance(original, (GraphQLError, Forbidden))


def _code(error: GraphQLError) -> str:
    """The code of a client error that did not name one (GraphQL's own parse and validation errors,
    and a use case's refusal of the caller's role)."""
    if isinstance(error.original_error, Forbidden):
        return "FORBIDDEN"
    if error.message.startswith("Syntax Error"):
        return "GRAPHQL_PARSE_FAILED"
    if error.message.startswith("Variable '$"):
        return "BAD_USER_INPUT"
    return "GRAPHQL_VALIDATION_FAILED"


UNAVAILABLE_MESSAGE = "The service is briefly unavailable; retry the same request."


class MaskUnexpectedErrors(MaskErrors):
    """In every environment: an unexpected exception reaches the client as "Unexpected error." with
    the request id, never its text (which may hold SQL and parameters); the log keeps it, with the
    same request id. A lost database or an exhausted pool is SERVICE_UNAVAILABLE instead (an HTTP
    503 with Retry-After): retrying the same request is safe. Every other error gets an
    `extensions.code` if it has none."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=_mask)

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        context = self.execution_context.context
        request_id = getattr(context, "request_id", None)
        client_request_id = getattr(context, "client_request_id", None)
        masked = super().anonymise_error(error)
        if database_unavailable(error.original_error):
            log.warning("database unavailable in request %s (client id %s) at %s", request_id, client_request_id,
                        error.path, exc_info=error.original_error)
            masked.message = UNAVAILABLE_MESSAGE
            masked.extensions = {"code": "SERVICE_UNAVAILABLE", "requestId": request_id}
            if isinstance(context, Context):
                context.answer_unavailable()
            return masked
        log.error("unexpected error in request %s (client id %s) at %s", request_id, client_request_id, error.path,
                  exc_info=error.original_error)
        masked.extensions = {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id}
        return masked

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        processed = super()._process_errors(errors)
        for error in processed:
            if not (error.extensions or {}).get("code"):
                error.extensions = {**(error.extensions or {}), "code": _code(error)}
        return processed


NUL_MESSAGE = "text arguments must not contain the NUL character (U+0000)"


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(map(_holds_nul, value.values()))
    if isinstance(value, list):
        return any(map(_holds_nul, value))
    return False


def _walk(node: Any) -> Iterator[Node]:
    """Every AST node under (and including) `node`."""
    yield node
    for name in node.keys:
        child = getattr(node, name, None)
        for item in child if isinstance(child, tuple | list) else (child,):
            if isinstance(item, Node):
                yield from _walk(item)


# The literals are part of the document's text, so the answer is the text's: remembered per text,
# like the parse, instead of walking the whole document on every request. Keyed by the text, not
# the document: hashing a document walks it too.
_NUL_IN_LITERALS: LRU[str, bool] = LRU(512)


def _literals_hold_nul(query: str | None, document: DocumentNode) -> bool:
    known = None if query is None else _NUL_IN_LITERALS.get(query)
    if known is None:
        known = any("\x00" in node.value for node in _string_values(document))
        if query is not None:
            _NUL_IN_LITERALS.put(query, known)
    return known


def _string_values(node: Any) -> Iterator[StringValueNode]:
    return (n for n in _walk(node) if isinstance(n, StringValueNode))


EMPTY_SELECTION_SET = "Syntax Error: a selection set selects at least one field; `{ }` selects nothing"


def _refusing_empty_selection_sets(rule: type[ValidationRule]) -> type[ValidationRule]:
    """The GraphQL grammar requires a selection set to select something, but graphql-core 3.3
    parses `{ }`, and Strawberry's depth limiter fails on it (`max()` of nothing). Such a document
    is refused here, as the syntax error it is, before the limiter looks at it."""

    class Guarded(rule):  # type: ignore[valid-type, misc]
        def __init__(self, context: ValidationContext) -> None:
            if any(isinstance(n, SelectionSetNode) and not n.selections for n in _walk(context.document)):
                ValidationRule.__init__(self, context)
                context.report_error(GraphQLError(EMPTY_SELECTION_SET, extensions={"code": "GRAPHQL_PARSE_FAILED"}))
                return
            super().__init__(context)

    return Guarded


class GuardRails(QueryCost):
    """Every request's guard rails in one extension. Strawberry looks up and enters each
    extension's hooks around each phase of every request (32 hook lookups per request with the
    seven extensions this replaces), so what they did is done here, phase by phase, in their order:

    - operation: its own copy of the context (`Context.for_operation`: over a websocket, Strawberry
      builds one context per connection (strawberry #1754), and without a copy every query sent
      over the socket would share ever-growing caches and read data from before writes made
      since; a subscription keeps its copy and refreshes it before each event), the depth, alias
      and (in production) introspection rules, and the token limit of the parse;
    - parse: Strawberry's ParserCache, except that a document that does not parse is left to
      Strawberry's own parse, which reports it (ParserCache parses outside the `try` that turns
      a GraphQLError into a result: over websockets a syntax error, or a document over the token
      limit, would kill the operation task with a bare `complete`);
    - validate: Strawberry's ValidationCache, then the NUL check: PostgreSQL text cannot hold
      U+0000, so it is refused in variables or in the document's string literals as a
      validation error before any resolver runs (or writes);
    - execute: the query cost (app.api.cost).
    """

    def __init__(self, *, rules: tuple[type[ValidationRule], ...], max_tokens: int, max_cost: int) -> None:
        super().__init__(limit=max_cost)
        self.rules, self.max_tokens = rules, max_tokens
        # Module-level LRU caches inside Strawberry, shared by every instance of the same size.
        self.cached_parse = ParserCache(maxsize=512).cached_parse_document
        self.cached_validate = ValidationCache(maxsize=512).cached_validate_document

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context
        if isinstance(context.context, Context):
            context.context = context.context.for_operation()
        context.validation_rules = context.validation_rules + self.rules
        context.parse_options["max_tokens"] = self.max_tokens
        yield

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        try:
            context.graphql_document = self.cached_parse(context.query, **context.parse_options)
        except GraphQLError:
            context.graphql_document = None
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        context.pre_execution_errors = self.cached_validate(context.schema._schema, document,  # noqa: SLF001
                                                            context.validation_rules)
        literal = document is not None and _literals_hold_nul(context.query, document)
        if literal or _holds_nul(context.variables):
            error = GraphQLError(NUL_MESSAGE, extensions={"code": "BAD_USER_INPUT"})
            context.pre_execution_errors = [*(context.pre_execution_errors or []), error]
        yield


class _Schema(strawberry.Schema):
    async def execute(self, *args: Any, allowed_operation_types: Any = None, **kwargs: Any) -> Any:
        # A subscription runs over a websocket (graphql-transport-ws). POSTed as a plain request
        # it would execute once as a query and fail on its null root: answer 400 instead.
        if allowed_operation_types is not None:
            allowed_operation_types = set(allowed_operation_types) - {OperationType.SUBSCRIPTION}
        return await super().execute(*args, allowed_operation_types=allowed_operation_types, **kwargs)


def build_schema(settings: Settings) -> strawberry.Schema:
    # Factories: Strawberry builds fresh extension instances per request. The caches are
    # module-level inside ParserCache/ValidationCache (functools.lru_cache), so they persist.
    # The validation cache is keyed by the rule classes too, and QueryDepthLimiter and
    # MaxAliasesLimiter create a new rule class per instance: build their rules once here,
    # or no validation would ever hit the cache.
    rules = (
        *map(_refusing_empty_selection_sets, QueryDepthLimiter(max_depth=settings.graphql_max_depth).validation_rules),
        *MaxAliasesLimiter(max_alias_count=settings.graphql_max_aliases).validation_rules,
        *((NoSchemaIntrospectionCustomRule,) if settings.production else ()),
    )
    extensions: list = [
        lambda: GuardRails(rules=rules, max_tokens=settings.graphql_max_tokens, max_cost=settings.graphql_max_cost),
        MaskUnexpectedErrors,
    ]
    schema = _Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        exception_handlers=HANDLERS,
        config=StrawberryConfig(
            disable_field_suggestions=settings.production, scalar_map={Series: SERIES_SCALAR}
        ),
    )
    # Lists of plain data complete without per-field execution (app.api.plain), and subscription
    # events that many sockets receive alike execute once (app.api.subscriptions); anything else
    # executes exactly as with Strawberry's own executor, which these extend.
    schema.execution_context_class = SharedResultsExecutor
    return schema


def sdl_of_introspection(introspection: dict) -> str:
    """The SDL a client that generates types from introspection sees (directives such as
    `@specifiedBy` included)."""
    return print_schema(build_client_schema(introspection)) + "\n"


def export_sdl() -> str:
    """schema.graphql: the schema exactly as introspection serves it."""
    schema = build_schema(Settings(app_env="development"))
    result = schema.execute_sync(get_introspection_query(descriptions=True, specified_by_url=True))
    assert result.data is not None, result.errors
    return sdl_of_introspection(result.data)


SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schema.graphql"
