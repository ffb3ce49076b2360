"""GraphQL over HTTP (the GraphQL-over-HTTP specification): which media type an answer takes, and
the status of a request that never reached execution."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
JSON = "application/json"


# Clients send the same few Accept headers; parsing one costs 5-10 us, a lookup 0.1 us.
@lru_cache(maxsize=256)
def response_media_type(accept: str | None) -> str:
    """The media type of the answer, chosen by the Accept header.

    The highest weight wins, then a type named exactly over one matched by a wildcard; a client
    that names both without weights (graphql-http's and Apollo's clients do) gets the newer one.
    Without an Accept header, with only wildcards (`*/*`), or with nothing we can give, the answer
    is application/json: that is what clients that predate the specification understand.
    """
    if not accept:
        return JSON
    ranks = {media_type: _rank(media_type, accept) for media_type in (JSON, GRAPHQL_RESPONSE_JSON)}
    return GRAPHQL_RESPONSE_JSON if ranks[GRAPHQL_RESPONSE_JSON] > ranks[JSON] else JSON


def _rank(media_type: str, accept: str) -> tuple[float, bool, bool]:
    """(weight, named exactly, is the newer type) of `media_type` in an Accept header. The most
    specific range that matches gives the weight (0: not acceptable)."""
    ranges = {media_type: 2, f"{media_type.split('/')[0]}/*": 1, "*/*": 0}
    weight, specificity = 0.0, -1
    for item in accept.split(","):
        name, *parameters = (part.strip() for part in item.split(";"))
        level = ranges.get(name.lower(), -1)
        if level > specificity:
            specificity, weight = level, _weight(parameters)
    named = specificity == 2 and weight > 0
    return weight, named, named and media_type == GRAPHQL_RESPONSE_JSON


def _weight(parameters: list[str]) -> float:
    for parameter in parameters:
        key, _, value = parameter.partition("=")
        if key.strip().lower() == "q":
            try:
                return min(max(float(value), 0.0), 1.0)
            except ValueError:
                return 0.0
    return 1.0


def is_request_error(response: dict[str, Any]) -> bool:
    """A GraphQL response without data because the request never executed: it did not parse or
    validate, its variables did not coerce, or it was refused before execution (cost, persisted
    query). Field errors always carry a `path`; these never do."""
    errors = response.get("errors")
    return response.get("data") is None and bool(errors) and not any("path" in error for error in errors)


def request_error_status(response: dict[str, Any]) -> int:
    """400, unless the server itself failed before execution (an unexpected exception in an
    extension, masked as INTERNAL_SERVER_ERROR)."""
    codes = {(error.get("extensions") or {}).get("code") for error in response["errors"]}
    return 500 if "INTERNAL_SERVER_ERROR" in codes else 400
