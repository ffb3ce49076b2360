"""Issue 12, the request path: what every request repeats is done once."""

from __future__ import annotations

from tests.support import token

VIEWER = {"query": "{ viewer { uid role } }"}


async def test_a_second_request_with_the_same_token_is_not_verified_again(client, verifications):
    bearer = token("operator", uid="hot-path-operator")

    answers = [await client.post("/graphql", json=VIEWER, headers={"Authorization": f"Bearer {bearer}"})
               for _ in range(2)]

    assert [a.json()["data"]["viewer"] for a in answers] == [{"uid": "hot-path-operator", "role": "OPERATOR"}] * 2
    assert verifications == [bearer]
