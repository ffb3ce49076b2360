"""A stand-in for a supplier's feed, for local runs, demos and tests: `staysync supplier-sim`.

It serves `GET /hotels` and `GET /contracts` (`?page=N`, `{"data": [...], "next_page": N | null}`,
`Authorization: Bearer <key>` when a key is set) from a JSON file in the drop-folder shape
`{"hotels": [...], "contracts": [...]}`. The file is read again whenever it changes, so it can be
edited by hand while the simulator runs. Records are served as written, invalid ones included,
so the feed's wall can be tried too.

Switches for the supplier's bad habits, set on the command line or at runtime through
`GET/POST /_sim/switches` (JSON):
- `flicker`: every second read of /contracts shows one room fewer on every other contract;
- `unit_drift`: of every three contracts, the second comes as a ROOM_NIGHTS total and the third
  as a plain integer of nights x rooms (the same count in another unit);
- `fail_rate`: that share of feed requests answers 500;
- `slow_ms`: every feed request waits this long before answering;
- `page_size`: records per page.
The `/_sim/...` endpoints take no key: they are the tester's controls, not the supplier's API
(the simulator binds to 127.0.0.1 unless told otherwise). `GET /_sim/stats` counts what it served.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import random
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

log = logging.getLogger("staysync.supplier_sim")

DEMO_DATA = Path(__file__).with_name("supplier_demo.json")


class Switches(BaseModel):
    """The supplier's bad habits; all off by default."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    flicker: bool = False
    unit_drift: bool = False
    fail_rate: float = Field(default=0.0, ge=0, le=1)
    slow_ms: int = Field(default=0, ge=0, le=60_000)
    page_size: int = Field(default=50, ge=1, le=10_000)


class DataFile:
    """The records of the data file, read again when the file changes. An edit that does not parse
    keeps the last good records (with a warning), so a half-saved file never empties the feed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int, int] | None = self._stat()
        self.hotels, self.contracts = self._read()  # a bad file at start is an error, not a warning

    def records(self) -> tuple[list[Any], list[Any]]:
        try:
            stamp: tuple[int, int, int] | None = self._stat()
        except OSError:
            stamp = None  # gone for now (an editor replacing it): read below, and warned about once
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self.hotels, self.contracts = self._read()
            except (OSError, ValueError) as error:
                log.warning("supplier-sim: %s: %s; still serving the last good copy", self.path, error)
            else:
                log.info("supplier-sim: %s read again: %d hotels, %d contracts",
                         self.path, len(self.hotels), len(self.contracts))
        return self.hotels, self.contracts

    def _stat(self) -> tuple[int, int, int]:
        status = self.path.stat()
        return status.st_mtime_ns, status.st_size, status.st_ino

    def _read(self) -> tuple[list[Any], list[Any]]:
        document = json.loads(self.path.read_text(encoding="utf-8"))
        if not isinstance(document, dict):
            raise ValueError('the data file must be a JSON object {"hotels": [...], "contracts": [...]}')
        hotels, contracts = document.get("hotels", []), document.get("contracts", [])
        if not isinstance(hotels, list) or not isinstance(contracts, list):
            raise ValueError('"hotels" and "contracts" must be lists')
        return hotels, contracts


class Simulator:
    def __init__(self, data: Path, *, api_key: str | None = None, switches: Switches | None = None,
                 seed: int | None = None) -> None:
        self.data = DataFile(data)
        self.api_key = api_key
        self.switches = switches or Switches()
        self.random = random.Random(seed)
        self.contract_reads = 0  # reads of /contracts page 1: the flicker dips on every second one
        self.served = 0
        self.failed = 0

    async def feed(self, request: Request) -> Response:
        if not self._authorised(request):
            return JSONResponse({"error": "unauthorized"}, status_code=401, headers={"WWW-Authenticate": "Bearer"})
        page = _page_number(request.query_params.get("page", "1"))
        if page is None:
            return JSONResponse({"error": "page must be a whole number from 1"}, status_code=400)
        switches = self.switches  # one view of the switches for the whole request
        if switches.slow_ms:
            await asyncio.sleep(switches.slow_ms / 1000)
        if switches.fail_rate and self.random.random() < switches.fail_rate:
            self.failed += 1
            return JSONResponse({"error": "simulated failure"}, status_code=500)
        hotels, contracts = self.data.records()
        if request.url.path == "/contracts":
            if page == 1:
                self.contract_reads += 1
            dip = switches.flicker and self.contract_reads > 0 and self.contract_reads % 2 == 0
            records = [_habits(index, record, dip=dip, drift=switches.unit_drift)
                       for index, record in enumerate(contracts)]
        else:
            records = hotels
        start = (page - 1) * switches.page_size
        end = start + switches.page_size
        self.served += 1
        return JSONResponse({"data": records[start:end], "next_page": page + 1 if end < len(records) else None})

    async def get_switches(self, request: Request) -> Response:
        return JSONResponse(self.switches.model_dump())

    async def set_switches(self, request: Request) -> Response:
        try:
            changes = json.loads(await request.body())
        except ValueError:
            changes = None
        if not isinstance(changes, dict):
            return JSONResponse({"error": "the body must be a JSON object of switches"}, status_code=400)
        try:
            self.switches = Switches.model_validate({**self.switches.model_dump(), **changes})
        except ValidationError as error:
            problems = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors(include_url=False)]
            return JSONResponse({"error": "; ".join(problems)}, status_code=400)
        log.info("supplier-sim: switches %s", self.switches.model_dump())
        return JSONResponse(self.switches.model_dump())

    async def stats(self, request: Request) -> Response:
        return JSONResponse({"served": self.served, "failed": self.failed, "contractReads": self.contract_reads})

    def _authorised(self, request: Request) -> bool:
        if self.api_key is None:
            return True
        given = request.headers.get("authorization", "").encode()
        return hmac.compare_digest(given, f"Bearer {self.api_key}".encode())


def create_app(data: Path = DEMO_DATA, *, api_key: str | None = None, switches: Switches | None = None,
               seed: int | None = None) -> Starlette:
    """The simulator as an ASGI app; its `Simulator` is `app.state.sim`. Raises OSError or
    ValueError when `data` cannot be read as a feed file."""
    sim = Simulator(data, api_key=api_key, switches=switches, seed=seed)
    app = Starlette(routes=[
        Route("/hotels", sim.feed, methods=["GET"]),
        Route("/contracts", sim.feed, methods=["GET"]),
        Route("/_sim/switches", sim.get_switches, methods=["GET"]),
        Route("/_sim/switches", sim.set_switches, methods=["POST"]),
        Route("/_sim/stats", sim.stats, methods=["GET"]),
    ])
    app.state.sim = sim
    return app


def _page_number(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() and 0 < int(text) < 10**9 else None


# --- the habits ------------------------------------------------------------------------------------


def _habits(index: int, record: Any, *, dip: bool, drift: bool) -> Any:
    """`record` as the supplier's bad habits show it this time (a copy; the file's records stay)."""
    if not isinstance(record, dict):
        return record
    shown = dict(record)
    if dip and index % 2 == 0:
        shown["allotment"] = _one_room_fewer(shown)
    if drift and index % 3:
        shown["allotment"] = _in_another_unit(shown, as_total=index % 3 == 1)
    return shown


def _rooms(allotment: Any) -> int | None:
    """Rooms per night, when `allotment` says so (an integer, or a ROOMS value)."""
    if isinstance(allotment, int) and not isinstance(allotment, bool):
        return allotment
    if isinstance(allotment, dict) and allotment.get("unit") == "ROOMS":
        return _rooms(allotment.get("value"))
    return None


def _nights(record: dict[str, Any]) -> int | None:
    try:
        return (date.fromisoformat(record["end_date"]) - date.fromisoformat(record["start_date"])).days + 1
    except (KeyError, TypeError, ValueError):
        return None


def _one_room_fewer(record: dict[str, Any]) -> Any:
    allotment = record.get("allotment")
    rooms = _rooms(allotment)
    if rooms is not None:
        return max(0, rooms - 1) if not isinstance(allotment, dict) else {**allotment, "value": max(0, rooms - 1)}
    nights = _nights(record)
    if isinstance(allotment, dict) and allotment.get("unit") == "ROOM_NIGHTS" and nights:
        total = _rooms(allotment.get("value"))  # an integer, whatever the unit
        if total is not None:
            return {**allotment, "value": max(0, total - nights)}  # one room fewer on every night
    return allotment


def _in_another_unit(record: dict[str, Any], *, as_total: bool) -> Any:
    allotment = record.get("allotment")
    rooms, nights = _rooms(allotment), _nights(record)
    if rooms is None or nights is None or nights < 1:
        return allotment
    total = rooms * nights
    return {"value": total, "unit": "ROOM_NIGHTS"} if as_total else total
