"""Authentication and role scoping over real HTTP."""

from __future__ import annotations

from tests.support import data, token

VIEWER = "query { viewer { uid role agency { code } } }"
CREATE_AGENCY = """
mutation($code: String!, $name: String!) {
  createAgency(input: {code: $code, name: $name}) {
    __typename
    ... on Agency { id code name }
    ... on InvalidInput { message code field }
  }
}
"""


async def test_viewer_answers_the_role_of_the_token(gql):
    # given a token per role / when asking who we are / then the claims come back
    admin = data(await gql(VIEWER, role="admin"))["viewer"]
    assert admin == {"uid": "dev-admin", "role": "ADMIN", "agency": None}
    operator = data(await gql(VIEWER, role="operator"))["viewer"]
    assert operator["role"] == "OPERATOR"


async def test_agent_viewer_resolves_its_agency(gql):
    data(await gql(CREATE_AGENCY, {"code": "SUNTRAVEL", "name": "Sun Travel"}))
    viewer = data(await gql(VIEWER, role="agent", agency="SUNTRAVEL"))["viewer"]
    assert viewer == {"uid": "dev-agent-SUNTRAVEL", "role": "AGENT", "agency": {"code": "SUNTRAVEL"}}


async def test_no_token_is_unauthenticated(gql):
    result = await gql(VIEWER, role=None)
    assert result["data"] is None
    [error] = result["errors"]
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert "Authorization" in error["message"]


async def test_malformed_authorization_header_is_unauthenticated(gql):
    for header in ("Token abc", "Bearer", "Bearer a b", "Bearer not-a-jwt"):
        result = await gql(VIEWER, role=None, headers={"Authorization": header})
        [error] = result["errors"]
        assert error["extensions"]["code"] == "UNAUTHENTICATED", header
        assert error["message"]


async def test_agent_without_agency_claim_is_unauthenticated(gql):
    import base64
    import json

    forged = token("agent", "SUNTRAVEL")
    header, payload, signature = forged.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    del claims["agency"]
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    result = await gql(VIEWER, role=None, headers={"Authorization": f"Bearer {header}.{payload}.{signature}"})
    assert result["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_wrong_role_is_forbidden_and_changes_nothing(gql):
    for role, agency in (("operator", None), ("agent", "SUNTRAVEL")):
        result = await gql(CREATE_AGENCY, {"code": "NEWCO", "name": "New Co"}, role=role, agency=agency)
        assert result["data"] is None
        assert result["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    agencies = data(await gql("{ agencies { code } }"))["agencies"]
    assert agencies == []


async def test_agent_cannot_see_another_agencys_node(gql):
    sun = data(await gql(CREATE_AGENCY, {"code": "SUNTRAVEL", "name": "Sun Travel"}))["createAgency"]
    blue = data(await gql(CREATE_AGENCY, {"code": "BLUEWAVE", "name": "Blue Wave"}))["createAgency"]
    query = "query($id: ID!) { node(id: $id) { id ... on Agency { code } } }"

    own = data(await gql(query, {"id": sun["id"]}, role="agent", agency="SUNTRAVEL"))["node"]
    other = data(await gql(query, {"id": blue["id"]}, role="agent", agency="SUNTRAVEL"))["node"]
    as_operator = data(await gql(query, {"id": blue["id"]}, role="operator"))["node"]

    assert own == {"id": sun["id"], "code": "SUNTRAVEL"}
    assert other is None
    assert as_operator["code"] == "BLUEWAVE"
    listed = data(await gql("{ agencies { code } }", role="agent", agency="SUNTRAVEL"))["agencies"]
    assert listed == [{"code": "SUNTRAVEL"}]


async def test_contracts_are_staff_only(gql):
    result = await gql("{ contracts { edges { node { id } } } }", role="agent", agency="SUNTRAVEL")
    assert result["errors"][0]["extensions"]["code"] == "FORBIDDEN"
