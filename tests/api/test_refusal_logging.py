"""Issue 11: refused authorization attempts are logged (request id, uid if known, role, operation,
field, reason), and no log line ever holds the token."""

from __future__ import annotations

import logging
import time

import pytest

from tests.support import token

HOTELS = "query Hotels { hotels { code } }"
NEW_AGENCY = 'mutation NewAgency { createAgency(input: {code: "SUN", name: "Sun"}) { __typename } }'


async def post(client, query: str, bearer: str) -> tuple[str, dict]:
    response = await client.post("/graphql", json={"query": query}, headers={"Authorization": f"Bearer {bearer}"})
    return response.headers["x-request-id"], response.json()


def logged(caplog: pytest.LogCaptureFixture, needle: str) -> logging.LogRecord:
    [record] = [r for r in caplog.records if needle in r.getMessage()]
    return record


def assert_token_not_logged(caplog: pytest.LogCaptureFixture, bearer: str) -> None:
    text = caplog.text
    for part in (bearer, *(segment for segment in bearer.split(".") if len(segment) > 8)):
        assert part not in text


@pytest.mark.parametrize("bearer, reason", [
    (token("admin", now=time.time() - 7200), "expired"),
    ("eyJhbGciOiJub25lIn0.bm90IGpzb24gYXQgYWxs.c2lnbmF0dXJlLXBhcnQ", "invalid"),  # google-auth quoted the payload
    (token("admin") + ".extra", "invalid"),  # ... and the whole token, with a wrong number of segments
])
async def test_a_refused_token_is_logged_without_the_token(client, caplog, bearer, reason):
    # when a request comes with a token that does not verify
    with caplog.at_level(logging.INFO):
        request_id, body = await post(client, HOTELS, bearer)

    # then the caller is told, and the log says which request was refused and why
    [error] = body["errors"]
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    refused = logged(caplog, "token refused")
    assert refused.levelno == logging.WARNING
    assert request_id in refused.getMessage() and f"reason {reason}" in refused.getMessage()
    field = logged(caplog, "access refused")
    assert request_id in field.getMessage() and "Query.hotels" in field.getMessage()
    assert "query Hotels" in field.getMessage() and f"unauthenticated ({reason})" in field.getMessage()
    # and never the token, whole or in part, in any log (Strawberry logs every error's message)
    assert_token_not_logged(caplog, bearer)
    assert "not json at all" not in caplog.text


async def test_a_permission_refusal_is_logged_with_who_and_what(client, caplog):
    bearer = token("agent", "SUNTRAVEL")

    with caplog.at_level(logging.INFO):
        request_id, body = await post(client, NEW_AGENCY, bearer)

    [error] = body["errors"]
    assert error["extensions"]["code"] == "FORBIDDEN"
    refused = logged(caplog, "access refused")
    message = refused.getMessage()
    assert refused.levelno == logging.INFO
    for part in (request_id, "uid dev-agent-SUNTRAVEL", "role agent", "mutation NewAgency", "Mutation.createAgency",
                 "needs role admin"):
        assert part in message, message
    assert_token_not_logged(caplog, bearer)
