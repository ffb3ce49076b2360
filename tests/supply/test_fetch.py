"""The feed client against a scripted supplier on a real loopback port: paging, retries, failures."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from app.services.supply.fetch import FetchFailed, FetchPolicy, SupplierClient
from app.settings import Settings
from domain.supply import SyncIssueKind
from tests.supply.loopback import Answer, Loopback, ScriptedSupplier, closed_port, page
from tests.supply.test_feed import contract, hotel

API_KEY = "sk_test_supplier_key_4f1c"
NOW = datetime(2027, 1, 1, 10, 0, tzinfo=UTC)
EMPTY = page([])


@pytest.fixture(scope="module")
def scripted() -> Iterator[tuple[ScriptedSupplier, str]]:
    supplier = ScriptedSupplier()
    with Loopback(supplier.app) as url:
        yield supplier, url


@pytest.fixture
def supplier(scripted: tuple[ScriptedSupplier, str]) -> ScriptedSupplier:
    scripted[0].script()
    return scripted[0]


@pytest.fixture
def base_url(scripted: tuple[ScriptedSupplier, str]) -> str:
    return scripted[1]


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def client_for(base_url: str, sleeps: list[float]) -> Any:
    async def record_sleep(seconds: float) -> None:
        sleeps.append(seconds)  # no real wait: the test asserts the delays instead

    def make(*, url: str = base_url, api_key: str | None = API_KEY, jitter: float = 1.0, **policy: Any) -> SupplierClient:
        return SupplierClient(url, api_key, policy=FetchPolicy(**policy), sleep=record_sleep,
                              jitter=lambda: jitter, now=lambda: NOW)

    return make


async def failure(client: SupplierClient) -> str:
    async with client:
        with pytest.raises(FetchFailed) as raised:
            await client.snapshot()
    assert API_KEY not in raised.value.message
    return raised.value.message


# --- a whole snapshot ----------------------------------------------------------------------------


async def test_every_page_of_hotels_then_contracts_becomes_one_snapshot(supplier, base_url, client_for, sleeps):
    # given
    supplier.script(
        page([hotel()], next_page=2), page([hotel(code="OPO-OLD")]),
        page([contract(id="A")], next_page=2), page([contract(id="B"), contract(id="C", allotment="5")], next_page=3),
        page([contract(id="D")]),
    )

    # when
    async with client_for() as client:
        snapshot = await client.snapshot()

    # then
    assert [h.code for h in snapshot.hotels] == ["LIS-RIVER", "OPO-OLD"]
    assert [c.external_id for c in snapshot.contracts] == ["A", "B", "D"]
    assert [(i.external_id, i.kind) for i in snapshot.issues] == [("C", SyncIssueKind.INVALID_RECORD)]
    assert supplier.pages == [("/hotels", "1"), ("/hotels", "2"),
                              ("/contracts", "1"), ("/contracts", "2"), ("/contracts", "3")]
    assert {seen.authorization for seen in supplier.requests} == {f"Bearer {API_KEY}"}
    assert sleeps == []


async def test_a_base_url_with_a_path_and_a_trailing_slash_keeps_its_path(supplier, base_url, client_for):
    supplier.script(EMPTY, EMPTY)

    async with client_for(url=f"{base_url}/mhg/v2/") as client:
        await client.snapshot()

    assert supplier.pages == [("/mhg/v2/hotels", "1"), ("/mhg/v2/contracts", "1")]


async def test_without_an_api_key_no_authorization_is_sent(supplier, client_for):
    supplier.script(EMPTY, EMPTY)

    async with client_for(api_key=None) as client:
        await client.snapshot()

    assert [seen.authorization for seen in supplier.requests] == [None, None]


async def test_an_empty_page_with_a_next_page_goes_on(supplier, client_for):
    supplier.script(EMPTY, page([], next_page=2), page([], next_page=5), page([contract()]))

    async with client_for() as client:
        snapshot = await client.snapshot()

    assert len(snapshot.contracts) == 1
    assert supplier.pages[1:] == [("/contracts", "1"), ("/contracts", "2"), ("/contracts", "5")]


# --- retries: 5xx, 429, timeouts and network errors ----------------------------------------------


async def test_5xx_answers_are_retried_with_exponential_backoff_then_the_page_is_read(supplier, client_for, sleeps):
    supplier.script(Answer(500), Answer(502), Answer(503), page([hotel()]), EMPTY)

    async with client_for(backoff_s=0.5) as client:
        snapshot = await client.snapshot()

    assert [h.code for h in snapshot.hotels] == ["LIS-RIVER"]
    assert sleeps == [0.5, 1.0, 2.0]  # jitter 1.0: the full bound each time
    assert supplier.pages == [("/hotels", "1")] * 4 + [("/contracts", "1")]


async def test_backoff_is_full_jitter_up_to_a_cap(supplier, client_for, sleeps):
    supplier.script(*[Answer(500)] * 5, EMPTY, EMPTY)

    async with client_for(attempts=6, backoff_s=1, backoff_cap_s=5, jitter=0.5) as client:
        await client.snapshot()

    assert sleeps == [0.5, 1.0, 2.0, 2.5, 2.5]


async def test_retries_are_bounded_then_the_fetch_fails(supplier, base_url, client_for, sleeps):
    supplier.script(*[Answer(503)] * 4)

    message = await failure(client_for())

    assert message == f"GET {base_url}/hotels?page=1: HTTP 503 (gave up after 4 attempts)"
    assert len(supplier.requests) == 4
    assert len(sleeps) == 3


async def test_429_waits_as_long_as_retry_after_says_in_seconds(supplier, client_for, sleeps):
    supplier.script(Answer(429, headers={"Retry-After": "7"}), EMPTY, EMPTY)

    async with client_for() as client:
        await client.snapshot()

    assert sleeps == [7.0]


async def test_429_honours_retry_after_as_an_http_date(supplier, client_for, sleeps):
    later = format_datetime(NOW + timedelta(seconds=42), usegmt=True)
    supplier.script(Answer(429, headers={"Retry-After": later}), Answer(503, headers={"Retry-After": "Mon, 01 Jan 2001 00:00:00 GMT"}),
                    EMPTY, EMPTY)

    async with client_for() as client:
        await client.snapshot()

    assert sleeps == [42.0, 0.0]  # a date already past: at once


async def test_a_long_retry_after_is_capped(supplier, client_for, sleeps):
    supplier.script(Answer(503, headers={"Retry-After": "86400"}), EMPTY, EMPTY)

    async with client_for(retry_after_cap_s=60) as client:
        await client.snapshot()

    assert sleeps == [60.0]


async def test_an_unreadable_retry_after_falls_back_to_backoff(supplier, client_for, sleeps):
    supplier.script(Answer(429, headers={"Retry-After": "soon"}), Answer(429, headers={"Retry-After": "-5"}), EMPTY, EMPTY)

    async with client_for(backoff_s=0.25) as client:
        await client.snapshot()

    assert sleeps == [0.25, 0.5]


async def test_429_throughout_fails_naming_it(supplier, client_for):
    supplier.script(*[Answer(429, headers={"Retry-After": "1"})] * 2)

    message = await failure(client_for(attempts=2))

    assert message.endswith("/hotels?page=1: HTTP 429 (gave up after 2 attempts)")


async def test_a_read_timeout_is_retried_then_the_page_is_read(supplier, client_for, sleeps):
    supplier.script(page([], next_page=2), Answer(delay_s=0.6, json={"data": [], "next_page": None}), page([hotel()]), EMPTY)

    async with client_for(read_timeout_s=0.2) as client:
        snapshot = await client.snapshot()

    assert [h.code for h in snapshot.hotels] == ["LIS-RIVER"]
    assert supplier.pages[:3] == [("/hotels", "1"), ("/hotels", "2"), ("/hotels", "2")]
    assert sleeps == [0.5]


async def test_timeouts_throughout_fail_the_fetch(supplier, client_for, sleeps):
    supplier.script(*[Answer(delay_s=0.6, json={"data": [], "next_page": None})] * 3)

    message = await failure(client_for(read_timeout_s=0.2, attempts=3))

    assert message.endswith("/hotels?page=1: no data for 0.2s (read timeout) (gave up after 3 attempts)")
    assert len(sleeps) == 2


async def test_a_refused_connection_is_retried_then_fails(client_for, sleeps):
    message = await failure(client_for(url=f"http://127.0.0.1:{closed_port()}", attempts=3))

    assert message.startswith("GET http://127.0.0.1:")
    assert "/hotels?page=1: ConnectError: " in message
    assert message.endswith("(gave up after 3 attempts)")
    assert len(sleeps) == 2


@pytest.mark.parametrize(("error", "problem"), [
    (httpx.ConnectTimeout("connect"), "no connection within 5s"),
    (httpx.WriteTimeout("write"), "timed out (WriteTimeout)"),
    (httpx.RemoteProtocolError("peer closed connection without sending complete message body"),
     "RemoteProtocolError: peer closed connection without sending complete message body"),
])
async def test_other_network_failures_are_retried_and_named(error, problem, sleeps):
    # raised by a mock transport: a loopback server cannot make a connection attempt time out
    def fail(request: httpx.Request) -> httpx.Response:
        raise error

    async def no_wait(seconds: float) -> None:
        sleeps.append(seconds)

    async with SupplierClient("http://supplier.test", API_KEY, transport=httpx.MockTransport(fail),
                              sleep=no_wait) as client:
        with pytest.raises(FetchFailed) as raised:
            await client.snapshot()

    assert raised.value.message == f"GET http://supplier.test/hotels?page=1: {problem} (gave up after 4 attempts)"
    assert len(sleeps) == 3


# --- failures that are not retried ---------------------------------------------------------------


@pytest.mark.parametrize(("status", "meaning"), [
    (401, " (the supplier refused the API key)"),
    (403, " (the API key may not read this feed)"),
    (404, " (no such feed: check the supplier's base URL)"),
    (400, ""),
    (422, ""),
    (302, " (redirects are not followed: check the supplier's base URL)"),
])
async def test_other_answers_fail_at_once(supplier, base_url, client_for, sleeps, status, meaning):
    supplier.script(Answer(status, json={"error": API_KEY}, headers={"Location": "http://elsewhere.test/"}), EMPTY)

    message = await failure(client_for())

    assert message == f"GET {base_url}/hotels?page=1: HTTP {status}{meaning}"
    assert len(supplier.requests) == 1
    assert sleeps == []


async def test_a_failure_on_contracts_after_good_hotels_still_fails_the_whole_fetch(supplier, client_for):
    supplier.script(page([hotel()]), page([contract()], next_page=2), Answer(401))

    message = await failure(client_for())

    assert message.endswith("/contracts?page=2: HTTP 401 (the supplier refused the API key)")


@pytest.mark.parametrize(("answer", "problem"), [
    (Answer(body=b"<html>maintenance</html>"), "not valid JSON ("),
    (Answer(body=b'{"data": [], "next_page": null'), "not valid JSON ("),
    (Answer(json=[hotel()]), "must be a JSON object, not a list"),
    (Answer(json={"hotels": [hotel()]}), "data: required; next_page: required"),
    (Answer(json={"data": [], "next_page": "2"}), "next_page: must be an integer"),
])
async def test_a_body_that_is_not_a_page_fails_at_once(supplier, base_url, client_for, sleeps, answer, problem):
    supplier.script(answer, EMPTY)

    message = await failure(client_for())

    assert message.startswith(f"GET {base_url}/hotels?page=1: {problem}")
    assert len(supplier.requests) == 1
    assert sleeps == []


async def test_a_page_larger_than_the_limit_fails(supplier, client_for):
    supplier.script(page([hotel(name="x" * 150) for _ in range(20)]))

    message = await failure(client_for(max_page_bytes=1000))

    assert message.endswith("/hotels?page=1: the response is larger than 1000 bytes")


async def test_a_feed_longer_than_the_page_limit_fails(supplier, base_url, client_for):
    supplier.script(*[page([], next_page=n + 1) for n in range(1, 4)])

    message = await failure(client_for(max_pages=3))

    assert message == f"GET {base_url}/hotels: more than 3 pages (the page limit); page 4 was next"
    assert len(supplier.requests) == 3


@pytest.mark.parametrize(("next_pages", "looping_page"), [([2, 2], 2), ([2, 1], 2), ([2, 3, 2], 3), ([1], 1)])
async def test_a_next_page_that_does_not_move_forward_is_a_loop(supplier, base_url, client_for, next_pages, looping_page):
    supplier.script(*[page([], next_page=n) for n in next_pages])

    message = await failure(client_for())

    assert message == (f"GET {base_url}/hotels?page={looping_page}: next_page is {next_pages[-1]}, "
                       "not after this page (the supplier's pager loops)")
    assert len(supplier.requests) == len(next_pages)


@pytest.mark.parametrize(("url", "message"), [
    ("ftp://supplier.test", "the supplier's base URL 'ftp://supplier.test' is not an http(s) URL"),
    ("supplier.test/feed", "the supplier's base URL 'supplier.test/feed' is not an http(s) URL"),
    ("http://", "the supplier's base URL 'http://' is not an http(s) URL"),
    ("http://[::1", "the supplier's base URL 'http://[::1' is not an http(s) URL"),
])
async def test_a_base_url_that_is_not_http_fails_before_any_request(client_for, url, message):
    assert await failure(client_for(url=url)) == message


async def test_an_api_key_a_header_cannot_carry_fails_without_quoting_it(supplier, client_for):
    key = "sk_bad\nkey"

    async with client_for(api_key=key) as client:
        with pytest.raises(FetchFailed) as raised:
            await client.snapshot()

    assert raised.value.message == "the supplier's API key has characters an HTTP header cannot carry"
    assert supplier.requests == []


def test_the_policy_comes_from_settings():
    settings = Settings(app_env="test", supplier_connect_timeout_s=2, supplier_read_timeout_s=9,
                        supplier_fetch_attempts=3, supplier_max_pages=50)

    assert FetchPolicy.from_settings(settings) == FetchPolicy(connect_timeout_s=2, read_timeout_s=9, attempts=3,
                                                              max_pages=50)
