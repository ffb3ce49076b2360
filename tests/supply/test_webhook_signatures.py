"""Standard Webhooks signatures: what a verified request is, and that the reference package agrees."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta, timezone

import pytest
import standardwebhooks

from app.services.webhook_signatures import (
    SignatureInvalid,
    new_secret,
    secret_key,
    sign,
    signed_headers,
    verify,
)

SECRET = "whsec_" + base64.b64encode(b"the supplier's webhook key bytes").decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"somebody else's key").decode()
NOW = datetime(2027, 1, 1, 10, 0, tzinfo=UTC)
BODY = b'{"type": "contracts.updated", "data": []}'


def headers(*, secret: str = SECRET, body: bytes = BODY, at: datetime = NOW, msg_id: str = "msg_1") -> dict[str, str]:
    return signed_headers(secret, msg_id, body, at)


def reason(headers: dict[str, str], body: bytes = BODY, *, now: datetime = NOW, secret: str = SECRET) -> str:
    with pytest.raises(SignatureInvalid) as raised:
        verify(secret, headers, body, now=now)
    return raised.value.reason


def test_a_signed_request_verifies_and_gives_its_webhook_id():
    assert verify(SECRET, headers(), BODY, now=NOW) == "msg_1"


def test_header_names_are_case_insensitive():
    shouted = {name.upper(): value for name, value in headers().items()}

    assert verify(SECRET, shouted, BODY, now=NOW) == "msg_1"


def test_the_signature_is_v1_base64_of_hmac_sha256_over_id_timestamp_and_body():
    expected = hmac.new(b"the supplier's webhook key bytes", b"msg_1.1798797600." + BODY, hashlib.sha256).digest()

    assert sign(SECRET, "msg_1", 1798797600, BODY) == "v1," + base64.b64encode(expected).decode()
    assert headers() == {"webhook-id": "msg_1", "webhook-timestamp": "1798797600",
                         "webhook-signature": sign(SECRET, "msg_1", 1798797600, BODY)}


def test_a_wrong_secret_is_refused():
    assert reason(headers(secret=OTHER_SECRET)) == (
        "no v1 signature matches (a wrong secret, or the body or headers were changed)")


@pytest.mark.parametrize("body", [BODY + b" ", BODY.replace(b"[]", b"[{}]"), b""])
def test_a_tampered_body_is_refused(body):
    assert reason(headers(), body).startswith("no v1 signature matches")


@pytest.mark.parametrize("header", ["webhook-id", "webhook-timestamp"])
def test_a_tampered_id_or_timestamp_is_refused(header):
    changed = headers()
    changed[header] = "msg_2" if header == "webhook-id" else str(int(changed[header]) + 1)

    assert reason(changed).startswith("no v1 signature matches")


def test_a_stale_timestamp_is_refused_even_with_a_good_signature():
    assert reason(headers(at=NOW - timedelta(minutes=5, seconds=1))) == (
        "the webhook-timestamp is 301s old (at most 300s: a replay?)")


def test_a_future_timestamp_is_refused_even_with_a_good_signature():
    assert reason(headers(at=NOW + timedelta(minutes=5, seconds=1))) == (
        "the webhook-timestamp is 301s in the future (at most 300s)")


@pytest.mark.parametrize("skew", [timedelta(minutes=-5), timedelta(minutes=5), timedelta(seconds=-299)])
def test_five_minutes_either_way_is_still_accepted(skew):
    assert verify(SECRET, headers(at=NOW + skew), BODY, now=NOW) == "msg_1"


def test_several_signatures_pass_when_one_of_them_is_valid():
    wrong = headers(secret=OTHER_SECRET)["webhook-signature"]
    good = headers()["webhook-signature"]
    rotating = {**headers(), "webhook-signature": f"v1a,c29tZXRoaW5n {wrong}  junk v1,!!! v2,{good[3:]} {good}"}

    assert verify(SECRET, rotating, BODY, now=NOW) == "msg_1"


@pytest.mark.parametrize("signature", ["v1", "v1,", "v1,not base64!", "v2," + "A" * 44, ",", "v1,YQ", "   "])
def test_a_malformed_signature_is_refused_with_a_typed_error(signature):
    assert reason({**headers(), "webhook-signature": signature}) in {
        "no v1 signature matches (a wrong secret, or the body or headers were changed)",
        "the webhook-signature header is missing",
    }


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_missing_header_is_refused(missing):
    partial = {name: value for name, value in headers().items() if name != missing}

    assert reason(partial) == f"the {missing} header is missing"


@pytest.mark.parametrize("timestamp", ["1798797600.5", "-1798797600", "1e9", "soon", "9" * 13, "١٧٩٨٧٩٧٦٠٠"])
def test_a_timestamp_that_is_not_whole_seconds_is_refused(timestamp):
    assert reason({**headers(), "webhook-timestamp": timestamp}) == (
        "the webhook-timestamp header is not whole seconds since 1970")


def test_the_clock_defaults_to_now():
    fresh = signed_headers(SECRET, "msg_now", BODY, datetime.now(UTC))

    assert verify(SECRET, fresh, BODY) == "msg_now"
    with pytest.raises(SignatureInvalid):
        verify(SECRET, headers(), BODY)  # signed in 2027


def test_an_aware_timestamp_in_another_zone_signs_the_same_instant():
    lisbon_summer = NOW.astimezone(timezone(timedelta(hours=1)))

    assert signed_headers(SECRET, "msg_1", BODY, lisbon_summer) == headers()


@pytest.mark.parametrize(("secret", "problem"), [
    ("c2VjcmV0", "a webhook secret starts with 'whsec_'"),
    ("whsec_", "a webhook secret may not be empty"),
    ("whsec_not base64!", "a webhook secret is 'whsec_' followed by base64"),
])
def test_a_secret_that_is_not_whsec_base64_is_a_configuration_error_not_a_bad_signature(secret, problem):
    with pytest.raises(ValueError, match="^" + problem.replace("(", r"\(") + "$"):
        verify(secret, headers(), BODY, now=NOW)


def test_a_secret_may_leave_out_its_base64_padding():
    assert secret_key(SECRET.rstrip("=")) == b"the supplier's webhook key bytes"


def test_new_secrets_are_random_and_usable():
    first, second = new_secret(), new_secret()

    assert first != second
    assert first.startswith("whsec_") and len(secret_key(first)) == 32
    assert verify(first, signed_headers(first, "m", BODY, NOW), BODY, now=NOW) == "m"


# --- the reference implementation (the `standardwebhooks` package) agrees -----------------------


def test_our_signature_is_the_reference_signature():
    reference = standardwebhooks.Webhook(SECRET)

    assert sign(SECRET, "msg_1", int(NOW.timestamp()), BODY) == reference.sign("msg_1", NOW, BODY.decode())


def test_the_reference_verifies_what_we_sign_and_we_verify_what_it_signs():
    now = datetime.now(UTC)
    ours = signed_headers(SECRET, "msg_ours", BODY, now)
    reference = standardwebhooks.Webhook(SECRET)
    theirs = {"webhook-id": "msg_theirs", "webhook-timestamp": str(int(now.timestamp())),
              "webhook-signature": reference.sign("msg_theirs", now, BODY.decode())}

    assert reference.verify(BODY, ours) == {"type": "contracts.updated", "data": []}
    assert verify(SECRET, theirs, BODY) == "msg_theirs"
