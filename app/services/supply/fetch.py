"""A supplier's HTTP feed read into one `Snapshot`: the whole of it, or `FetchFailed`.

`GET {base}/hotels` then `GET {base}/contracts`, each `?page=N` from 1 on, following `next_page`.
Nothing is returned until every page has been read and parsed, so a failure part-way applies
nothing. Transient failures (5xx, 429, network errors and timeouts) are retried a few times with
capped exponential backoff and full jitter, or after the supplier's own Retry-After; any other
answer fails at once. Messages name the URL, the page and the cause, never the API key.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

import httpx

from app.services.retry_after import retry_after_s
from app.services.supply.feed import FeedPage, FeedShapeError, build_snapshot, load_json, parse_page
from domain.supply import Snapshot

if TYPE_CHECKING:
    from app.settings import Settings

Resource = Literal["hotels", "contracts"]
# A header value carries visible ASCII only; anything else would make httpx fail with the key
# quoted in its message.
_TOKEN = re.compile(r"[\x21-\x7e]+")


@dataclass(frozen=True, slots=True)
class FetchPolicy:
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0  # between bytes of a response, not for the whole of it
    attempts: int = 4  # per page, the first one included
    backoff_s: float = 0.5  # the first retry waits up to this; each next one up to twice as long
    backoff_cap_s: float = 30.0
    retry_after_cap_s: float = 60.0  # a longer Retry-After is cut to this
    max_pages: int = 1000  # per resource; a feed longer than this is taken for a broken pager
    max_page_bytes: int = 32 * 1024 * 1024

    @classmethod
    def from_settings(cls, settings: Settings) -> FetchPolicy:
        return cls(
            connect_timeout_s=settings.supplier_connect_timeout_s,
            read_timeout_s=settings.supplier_read_timeout_s,
            attempts=settings.supplier_fetch_attempts,
            max_pages=settings.supplier_max_pages,
        )


class FetchFailed(Exception):
    """The feed could not be read whole; `message` says where and why (a run's FETCH_FAILED issue)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class _Retryable(Exception):
    def __init__(self, problem: str, retry_after_s: float | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.retry_after_s = retry_after_s


class SupplierClient:
    """Reads one supplier's feed. Use as `async with SupplierClient(...) as client:`.

    `transport`, `sleep`, `jitter` and `now` are for tests: a scripted transport, no real waits
    (and the waits recorded), fixed jitter, a fixed clock for Retry-After dates.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        policy: FetchPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._configured_url = base_url
        self.policy = policy or FetchPolicy()
        self._api_key = api_key
        self._sleep, self._jitter, self._now = sleep, jitter, now
        timeout = httpx.Timeout(self.policy.read_timeout_s, connect=self.policy.connect_timeout_s)
        headers = {"Accept": "application/json", "User-Agent": "StaySync-supplier-sync"}
        if api_key is not None and _TOKEN.fullmatch(api_key):
            headers["Authorization"] = f"Bearer {api_key}"
        # Redirects are not followed: a feed that moved is a configuration to fix, and a redirect
        # to another host would be where a bearer key leaks.
        self._http = httpx.AsyncClient(timeout=timeout, headers=headers, transport=transport, follow_redirects=False)

    async def __aenter__(self) -> SupplierClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def snapshot(self) -> Snapshot:
        """Hotels and contracts, every page of both, validated record by record."""
        hotels = await self.records("hotels")
        contracts = await self.records("contracts")
        return build_snapshot(hotels, contracts)

    async def records(self, resource: Resource) -> list[object]:
        """The raw records of every page of `resource`, in feed order."""
        self._check_configuration()
        url = f"{self.base_url}/{resource}"
        records: list[object] = []
        page = 1
        for _ in range(self.policy.max_pages):
            result = await self._page(url, page)
            records.extend(result.data)
            if result.next_page is None:
                return records
            if result.next_page <= page:
                raise FetchFailed(f"GET {url}?page={page}: next_page is {result.next_page}, not after this page "
                                  "(the supplier's pager loops)")
            page = result.next_page
        raise FetchFailed(f"GET {url}: more than {self.policy.max_pages} pages (the page limit); "
                          f"page {page} was next")

    def _check_configuration(self) -> None:
        try:
            url = httpx.URL(self.base_url) if "://" in self.base_url else None
        except httpx.InvalidURL:
            url = None
        if url is None or url.scheme not in ("http", "https") or not url.host:
            raise FetchFailed(f"the supplier's base URL {self._configured_url!r} is not an http(s) URL")
        if self._api_key is not None and not _TOKEN.fullmatch(self._api_key):
            raise FetchFailed("the supplier's API key has characters an HTTP header cannot carry")

    async def _page(self, url: str, page: int) -> FeedPage:
        where = f"GET {url}?page={page}"
        attempt = 1
        while True:
            try:
                body = await self._get(url, page, where)
            except _Retryable as failure:
                if attempt >= self.policy.attempts:
                    raise FetchFailed(f"{where}: {failure.problem} (gave up after {attempt} attempts)") from None
                await self._sleep(self._delay(attempt, failure.retry_after_s))
                attempt += 1
                continue
            try:
                return parse_page(load_json(body, where), where)
            except FeedShapeError as error:
                raise FetchFailed(self._scrub(error.message)) from None

    async def _get(self, url: str, page: int, where: str) -> bytes:
        """The body of a 2xx answer; `_Retryable` for what may pass, `FetchFailed` for what will not."""
        try:
            async with self._http.stream("GET", url, params={"page": page}) as response:
                if response.status_code == 429 or response.status_code >= 500:
                    raise _Retryable(f"HTTP {response.status_code}",
                                     retry_after_s(response.headers.get("retry-after"), self._now()))
                if not 200 <= response.status_code < 300:
                    raise FetchFailed(f"{where}: HTTP {response.status_code}{_meaning(response.status_code)}")
                return await self._read(response, where)
        except httpx.TransportError as error:  # timeouts, refused connections, dropped responses
            raise _Retryable(self._scrub(_transport_problem(error, self.policy))) from None

    async def _read(self, response: httpx.Response, where: str) -> bytes:
        limit = self.policy.max_page_bytes
        too_large = FetchFailed(f"{where}: the response is larger than {limit} bytes")
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise too_large
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > limit:
                raise too_large
        return bytes(body)

    def _delay(self, attempt: int, retry_after_s: float | None) -> float:
        if retry_after_s is not None:
            return min(retry_after_s, self.policy.retry_after_cap_s)
        # full jitter (a random wait up to the exponential bound) keeps many clients from retrying in step
        return self._jitter() * min(self.policy.backoff_cap_s, self.policy.backoff_s * 2 ** (attempt - 1))

    def _scrub(self, message: str) -> str:
        return message.replace(self._api_key, "***") if self._api_key else message


async def fetch_snapshot(base_url: str, api_key: str | None, *, policy: FetchPolicy | None = None) -> Snapshot:
    """One supplier's whole feed as a snapshot; raises FetchFailed."""
    async with SupplierClient(base_url, api_key, policy=policy) as client:
        return await client.snapshot()


def _meaning(status: int) -> str:
    if status == 401:
        return " (the supplier refused the API key)"
    if status == 403:
        return " (the API key may not read this feed)"
    if status == 404:
        return " (no such feed: check the supplier's base URL)"
    if 300 <= status < 400:
        return " (redirects are not followed: check the supplier's base URL)"
    return ""


def _transport_problem(error: httpx.TransportError, policy: FetchPolicy) -> str:
    if isinstance(error, httpx.ConnectTimeout):
        return f"no connection within {policy.connect_timeout_s:g}s"
    if isinstance(error, httpx.ReadTimeout):
        return f"no data for {policy.read_timeout_s:g}s (read timeout)"
    if isinstance(error, httpx.TimeoutException):
        return f"timed out ({type(error).__name__})"
    detail = str(error) or "no detail"
    return f"{type(error).__name__}: {detail}"
