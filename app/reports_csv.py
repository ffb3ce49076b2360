"""`GET /reports/<name>.csv`: the reports as CSV, with the GraphQL fields' arguments as query
parameters and the same Bearer token.

Arguments are checked, and the first rows read, before the first byte is sent, so a bad request
is a clear 400 (401, 403) and never a CSV. The body is streamed: the booking lines are written by
PostgreSQL's COPY and passed on chunk by chunk, so a year of a busy hotel never sits in memory.
Should the read fail after streaming began, the body ends with a line `# error: ...` instead of
more rows, so a truncated file never passes for a complete one.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import date
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse

from app.api.ids import decode_id
from app.auth import AuthenticationError, bearer_token
from app.services import reports
from app.services.context import Caller
from app.services.errors import Forbidden, InvalidInput
from domain import format_amount
from domain.reports import Period

log = logging.getLogger(__name__)

CHUNK_ROWS = 500


def _date(request: Request, name: str) -> date:
    value = request.query_params.get(name)
    if value is None:
        raise InvalidInput(name, f"{name} is required (YYYY-MM-DD)")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(name, f"{name} must be a date YYYY-MM-DD, got {value!r}") from None


def _id(request: Request, name: str, type_name: str, *, required: bool = False) -> int | None:
    value = request.query_params.get(name)
    if value is None:
        if required:
            raise InvalidInput(name, f"{name} is required")
        return None
    return decode_id(value, type_name, name)


def _choice(request: Request, name: str, choices: Iterable[str]) -> str:
    value = request.query_params.get(name, "")
    if value not in choices:
        raise InvalidInput(name, f"{name} must be one of {', '.join(choices)}")
    return value


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (date, Decimal)):
        return str(value)
    return value


async def _written(header: list[str], rows: Iterable[list[Any]]) -> AsyncIterator[bytes]:
    """A report computed whole (pickup, utilisation, revenue: at most a row per key and period) as
    CSV chunks of CHUNK_ROWS rows."""
    yield _encode([header]).encode()
    chunk: list[list[Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= CHUNK_ROWS:
            yield _encode(chunk).encode()
            chunk = []
    if chunk:
        yield _encode(chunk).encode()


async def _pickup(request: Request, services: Any, caller: Caller) -> AsyncIterator[bytes]:
    found = await reports.pickup_report(services, caller, _id(request, "hotelId", "Hotel"),
                                        _id(request, "agencyId", "Agency"), _date(request, "from"), _date(request, "to"))
    header = ["hardblock", "hotel_id", "agency_id", "room_type_id", "room_nights_blocked", "room_nights_picked_up",
              "room_nights_released", "room_nights_remaining", "pickup_percent", "wash_percent"]
    return _written(header, (
        [p.block.reference, p.block.hotel_id, p.block.agency_id, p.block.room_type_id, p.figures.blocked,
         p.figures.picked_up, p.figures.released, p.figures.remaining, p.figures.pickup_percent,
         p.figures.wash_percent] for p in found))


async def _utilisation(request: Request, services: Any, caller: Caller) -> AsyncIterator[bytes]:
    period = Period(_choice(request, "groupBy", [p.value for p in Period]))
    rows, room_types = await reports.utilisation_report(services, caller, _id(request, "hotelId", "Hotel", required=True),
                                                        _date(request, "from"), _date(request, "to"), period)
    header = ["room_type", "from", "to", "allotment", "hardblocked", "held", "sold", "released", "available",
              "overcommitted", "closed_nights", "utilisation_percent"]
    return _written(header, (
        [room_types[r.room_type_id].code, r.start, r.end, r.allotment, r.hardblocked, r.held, r.sold, r.released,
         r.available, r.overcommitted, r.closed_nights, r.utilisation_percent] for r in rows))


async def _revenue(request: Request, services: Any, caller: Caller) -> AsyncIterator[bytes]:
    group_by = _choice(request, "groupBy", reports.REVENUE_KEYS)
    rows = await reports.revenue_report(services, caller, _date(request, "from"), _date(request, "to"), group_by,
                                        _id(request, "hotelId", "Hotel"))
    staff = caller.is_staff
    header = ["key", "label", "currency", "bookings", "room_nights", "revenue", *(["cost", "margin"] if staff else []),
              "cancellations", "cancelled_room_nights", "average_daily_rate"]
    def amount(value: Decimal | None, currency: str) -> str | None:
        return None if value is None else format_amount(value, currency)

    return _written(header, (
        [r.key, r.label, r.currency, r.bookings, r.room_nights, amount(r.revenue, r.currency),
         *([amount(r.cost, r.currency), amount(r.margin, r.currency)] if staff else []), r.cancellations,
         r.cancelled_room_nights, amount(r.average_daily_rate, r.currency)] for r in rows))


async def _bookings(request: Request, services: Any, caller: Caller) -> AsyncIterator[bytes]:
    chunks = reports.booking_lines_csv(services, caller, _date(request, "from"), _date(request, "to"),
                                       _id(request, "hotelId", "Hotel"))
    first = await anext(chunks)  # the arguments checked and the query running before any byte
    return _prepended(first, chunks)


async def _prepended(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for chunk in rest:
        yield chunk


REPORTS: dict[str, Callable[[Request, Any, Caller], Any]] = {
    "pickup": _pickup, "utilisation": _utilisation, "revenue": _revenue, "bookings": _bookings,
}


def _encode(rows: Iterable[list[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for row in rows:
        writer.writerow([_cell(value) for value in row])
    return buffer.getvalue()


async def _stream(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    sent = 0
    try:
        async for chunk in chunks:
            sent += len(chunk)
            yield chunk
    except Exception as error:  # after the first byte: say so in the body, never end it as if complete
        log.exception("CSV export failed after %s bytes", sent)
        yield f"\r\n# error: the export failed ({type(error).__name__}); this file is incomplete\r\n".encode()


async def report_csv(request: Request) -> Response:
    runtime = request.app.state.runtime
    name = request.path_params["name"]
    if name not in REPORTS:
        return PlainTextResponse(f"no report {name!r}; reports: {', '.join(sorted(REPORTS))}\n", status_code=404)
    try:
        token = bearer_token(request.headers.get("authorization"))
        if token is None:
            return PlainTextResponse("Authentication required: send 'Authorization: Bearer <Firebase ID token>'\n",
                                     status_code=401, headers={"WWW-Authenticate": "Bearer"})
        principal = await runtime.verifier.verify(token)
    except AuthenticationError as error:
        return PlainTextResponse(f"{error.message}\n", status_code=401, headers={"WWW-Authenticate": "Bearer"})
    caller = Caller(principal, request.headers.get("x-request-id"))
    try:
        report = await REPORTS[name](request, runtime.services, caller)
    except InvalidInput as error:
        return PlainTextResponse(f"{error.message}\n", status_code=400)
    except Forbidden as error:
        return PlainTextResponse(f"{error.message}\n", status_code=403)
    filename = f"{name}-{request.query_params.get('from', '')}-{request.query_params.get('to', '')}.csv"
    return StreamingResponse(_stream(report), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{filename}"',
                                      "Cache-Control": "no-store"})
