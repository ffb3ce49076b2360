"""Properties of selling restrictions through the GraphQL API, on real PostgreSQL.

What "order independent" means here. A RESTRICTION event's place in the total order is its
`order_key` (effective time, then id: domain/events.py). Through the API both are fixed by when
the event is recorded, so the recording order *is* the total order and "the last one wins" makes
the result depend on it: minStay 2 then minStay 3 is not minStay 3 then minStay 2. (The domain
property tests claim independence from the order the resolver is *given* the events in, each
carrying its key; tests/domain/test_restrictions.py.) The API-level property that is true is the
commutation one that "last wins, field by field" implies: two events can only matter to each
other's order when they *conflict*: same room type, overlapping nights, agency scopes that share
an agency (an event for all agencies shares every one), and a field both set to different values.
So any recording order that keeps every conflicting pair in its original relative order gives
the same calendar and the same decisions. Such orders are drawn as random linear extensions of
the conflict order: events setting disjoint fields, other agencies, other nights or the same
value are reordered freely, and conflicting ones keep their order.

Each example gets its own hotel (a unique code) and contracts, so examples never see
each other's rows inside the one test function (the `db` fixture truncates per test, not per
example). Two runs to compare are two hotels with the same nights and contracts.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.api.test_calendar import START, VOID, d
from tests.api.test_catalog import CREATE_AGENCY, UPSERT_CONTRACT, contract_input, make_hotel
from tests.api.test_restrictions import CELLS, set_restrictions
from tests.support import data

# Each example writes a hotel or two through the API: few examples, no deadline. The fixtures are
# per test function on purpose (one truncation, two agencies; each example makes its own hotels).
PROPERTIES = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

ROOM_TYPES = ("STD", "SUP")
AGENCIES = ("A", "B")  # two agencies, by role (the `agencies` fixture makes them)
WINDOW = 14  # nights d(0)..d(13): every arrival and every check-out the stays below can have
# START is 60 days after the host's today, so arrivals d(0)..d(9) are 60-69 days ahead: advance
# windows around that range bind some arrivals and not others.
ADVANCE = st.integers(57, 72)

QUOTE = """
query($input: QuoteInput!) { quote(input: $input) {
  __typename
  ... on Quote { total { amount currency } }
  ... on SoldOut { shortfalls { roomType { code } date requested available } }
  ... on RestrictionViolated { violations { roomType { code } date rule detail } }
  ... on UserError { message code }
  ... on InvalidInput { field }
} }
"""
BOOK = """
mutation($input: CreateBookingInput!) { createBooking(input: $input) {
  __typename
  ... on BookingGroup { id total { amount currency } }
  ... on SoldOut { shortfalls { roomType { code } date requested available } }
  ... on RestrictionViolated { violations { roomType { code } date rule detail } }
  ... on UserError { message code }
  ... on InvalidInput { field }
} }
"""


# --- generated input ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Restriction:
    """One setRestrictions call: room type code, nights [start, end) as offsets from START, the
    agencies it binds by role (empty: all) and the fields it sets (API names)."""

    room_type: str
    start: int
    end: int
    scope: frozenset[str]
    fields: tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class Stay:
    agency: str
    items: tuple[tuple[str, int, int, int], ...]  # (room type code, arrival offset, nights, rooms)


@st.composite
def restrictions(draw) -> Restriction:
    start = draw(st.integers(0, WINDOW - 2))
    end = draw(st.integers(start + 1, min(start + 6, WINDOW)))
    names = draw(st.lists(st.sampled_from(["minStay", "maxStay", "closedToArrival", "closedToDeparture",
                                           "minAdvanceDays", "maxAdvanceDays"]), min_size=1, max_size=3, unique=True))
    values: dict[str, Any] = {}
    for name in names:
        if name in ("minStay", "maxStay"):
            values[name] = draw(st.integers(1, 4))
        elif name.startswith("closed"):
            values[name] = draw(st.booleans())
        else:
            values[name] = draw(ADVANCE)
    for low, high in (("minStay", "maxStay"), ("minAdvanceDays", "maxAdvanceDays")):
        if low in values and high in values and values[low] > values[high]:
            values[low], values[high] = values[high], values[low]  # one event may not cross them
    scope = draw(st.sampled_from([frozenset(), frozenset({"A"}), frozenset({"B"}), frozenset(AGENCIES)]))
    return Restriction(draw(st.sampled_from(ROOM_TYPES)), start, end, scope, tuple(sorted(values.items())))


@st.composite
def stays(draw, anchors: tuple[int, ...] = (), rooms: st.SearchStrategy[int] = st.just(1)) -> Stay:
    """A group of one or two stays (one per room type). Arrivals and check-outs are often drawn
    from `anchors`, the nights where generated restrictions start or end: a check-out on the
    first night of a closedToDeparture event that covers none of the stay's nights, say, is what
    a read one night short would get wrong, and uniform stays seldom land there."""
    items = []
    for _ in range(draw(st.integers(1, 2))):
        room_type = draw(st.sampled_from(ROOM_TYPES))
        if any(existing[0] == room_type for existing in items):
            continue  # one item per room type: the group's items are what is compared, not the merging
        arrivals = [a for a in anchors if a <= 9]
        arrival = draw(st.one_of(st.integers(0, 9), *([st.sampled_from(arrivals)] if arrivals else [])))
        lengths = [c - arrival for c in anchors if 1 <= c - arrival <= 4]
        nights = draw(st.one_of(st.integers(1, 4), *([st.sampled_from(lengths)] if lengths else [])))
        items.append((room_type, arrival, nights, draw(rooms)))
    return Stay(draw(st.sampled_from(AGENCIES)), tuple(items))


def anchors(events: list[Restriction]) -> tuple[int, ...]:
    return tuple(sorted({n for r in events for n in (r.start, r.end)}))


@st.composite
def scenarios(draw, events: st.SearchStrategy[list[Any]], max_stays: int = 3,
              rooms: st.SearchStrategy[int] = st.just(1)) -> tuple[list[Any], list[Stay]]:
    """Events (Restriction, or (Restriction, flag)) and stays probing their edges."""
    drawn = draw(events)
    restrictions_drawn = [e if isinstance(e, Restriction) else e[0] for e in drawn]
    probes = draw(st.lists(stays(anchors(restrictions_drawn), rooms), min_size=1, max_size=max_stays))
    return drawn, probes


def conflict(a: Restriction, b: Restriction) -> bool:
    """Whether the order of `a` and `b` can matter: they set one field differently on some night
    of one room type for some agency."""
    if a.room_type != b.room_type or a.end <= b.start or b.end <= a.start:
        return False
    if a.scope and b.scope and not a.scope & b.scope:
        return False
    theirs = dict(b.fields)
    return any(name in theirs and theirs[name] != value for name, value in a.fields)


def respects_conflicts(events: list[Restriction], order: list[int]) -> bool:
    place = {i: n for n, i in enumerate(order)}
    return all(place[i] < place[j] for i in range(len(events)) for j in range(i + 1, len(events))
               if conflict(events[i], events[j]))


@st.composite
def commuting_orders(draw, events: list[Restriction]) -> list[int]:
    """A random order of `events` (as indices) keeping every conflicting pair as it was."""
    left, order = list(range(len(events))), []
    while left:
        ready = [i for i in left if not any(conflict(events[j], events[i]) for j in left if j < i)]
        pick = ready[draw(st.integers(0, len(ready) - 1))]
        left.remove(pick)
        order.append(pick)
    return order


# --- a fresh inventory per example ------------------------------------------------------------------


@dataclass
class Inventory:
    hotel: dict[str, Any]
    room_types: dict[str, str]  # code -> global id
    agencies: dict[str, str]  # role ("A", "B") -> global id
    codes: dict[str, str]  # role -> agency code (the agent's token names it)
    events: list[str] = field(default_factory=list)  # global ids, as recorded


@pytest.fixture
async def agencies(gql) -> tuple[dict[str, str], dict[str, str]]:
    """Two agencies for the whole test function (its examples only add hotels): role ("A", "B")
    -> global id, and role -> agency code (an agent's token names it)."""
    ids, codes = {}, {}
    for role in AGENCIES:
        created = data(await gql(CREATE_AGENCY, {"input": {"code": f"AGENCY-{role}", "name": f"Agency {role}"}}))
        assert created["createAgency"]["__typename"] == "Agency", created
        ids[role], codes[role] = created["createAgency"]["id"], created["createAgency"]["code"]
    return ids, codes


async def fresh_inventory(gql, agencies, allotment: int = 10) -> Inventory:
    """A new hotel with both room types under contract for 30 nights from START."""
    tag = uuid.uuid4().hex[:10].upper()
    hotel, ids = await make_hotel(gql, code=f"H{tag}", room_types=ROOM_TYPES)
    for code in ROOM_TYPES:
        result = data(await gql(UPSERT_CONTRACT, {"input": contract_input(
            hotel["id"], ids[code], externalId=f"C-{tag}-{code}", allotment=allotment,
            **{"from": START.isoformat(), "to": (START + timedelta(days=30)).isoformat()})}))
        assert result["upsertContract"]["__typename"] == "Contract", result
    return Inventory(hotel, ids, *agencies)


async def record(gql, inv: Inventory, r: Restriction) -> str:
    result = await set_restrictions(gql, roomTypeId=inv.room_types[r.room_type],
                                    agencyIds=[inv.agencies[role] for role in sorted(r.scope)],
                                    **{"from": d(r.start), "to": d(r.end)}, **dict(r.fields))
    assert result["__typename"] == "AllotmentEvent", (r, result)
    inv.events.append(result["id"])
    return result["id"]


async def void(gql, event_id: str) -> None:
    result = data(await gql(VOID, {"id": event_id}))["voidAllotmentEvent"]
    assert result["__typename"] == "AllotmentEvent" and result["voided"], result


# --- what is compared -------------------------------------------------------------------------------


async def views(gql, inv: Inventory) -> dict[str, Any]:
    """Every night's restrictions and reasons, per room type, as staff and as each agency sees them."""
    out = {}
    for viewer in (None, *AGENCIES):
        caller = {"role": "agent", "agency": inv.codes[viewer]} if viewer else {"role": "admin"}
        result = data(await gql(CELLS, {"id": inv.hotel["id"], "from": d(0), "to": d(WINDOW)}, **caller))
        out[viewer or "staff"] = {
            row["roomType"]["code"]: [(c["date"], c["restrictions"], c["reasons"]) for c in row["cells"]]
            for row in result["node"]["calendar"]["rows"]
        }
    return out


def items(inv: Inventory, stay: Stay) -> list[dict[str, Any]]:
    return [{"roomTypeId": inv.room_types[rt], "checkIn": d(offset), "checkOut": d(offset + nights), "rooms": rooms}
            for rt, offset, nights, rooms in stay.items]


def outcome(result: dict[str, Any]) -> tuple[str, Any]:
    """A decision, comparable across hotels and between quote and createBooking: refusals with
    their details, acceptances as accepted."""
    kind = result["__typename"]
    if kind in ("Quote", "BookingGroup"):
        return ("accepted", None)
    if kind == "RestrictionViolated":
        return (kind, [(v["roomType"]["code"], v["date"], v["rule"], v["detail"]) for v in result["violations"]])
    if kind == "SoldOut":
        return (kind, [(s["roomType"]["code"], s["date"], s["requested"], s["available"])
                       for s in result["shortfalls"]])
    return (kind, result.get("code"))


async def quote(gql, inv: Inventory, stay: Stay) -> dict[str, Any]:
    request = {"agencyId": inv.agencies[stay.agency], "items": items(inv, stay)}
    return data(await gql(QUOTE, {"input": request}))["quote"]


async def book(gql, inv: Inventory, stay: Stay) -> dict[str, Any]:
    request = {"idempotencyKey": uuid.uuid4().hex, "agencyId": inv.agencies[stay.agency], "guestName": "Ada Lovelace",
               "items": items(inv, stay)}
    return data(await gql(BOOK, {"input": request}))["createBooking"]


async def decisions(gql, inv: Inventory, probes: list[Stay]) -> list[tuple[Any, Any]]:
    """Quote then book each stay in turn (a booking holds rooms the next stays see)."""
    out = []
    for stay in probes:
        out.append((outcome(await quote(gql, inv, stay)), outcome(await book(gql, inv, stay))))
    return out


# --- the properties ---------------------------------------------------------------------------------


@PROPERTIES
@given(scenarios(st.lists(restrictions(), min_size=2, max_size=6)), st.data())
async def test_recording_order_does_not_matter_beyond_conflicting_pairs(gql, agencies, scenario, draws):
    """Recording the events in any order that keeps each conflicting pair in its relative order
    gives every night the same restrictions and reasons for staff and for each agency, and the
    same quote and createBooking decisions."""
    events, probes = scenario
    order = draws.draw(commuting_orders(events), label="order")
    event(f"reordered: {order != sorted(order)}")
    first, second = await fresh_inventory(gql, agencies), await fresh_inventory(gql, agencies)
    for r in events:
        await record(gql, first, r)
    for i in order:
        await record(gql, second, events[i])
    assert await views(gql, second) == await views(gql, first)
    assert await decisions(gql, second, probes) == await decisions(gql, first, probes)


@PROPERTIES
@given(scenarios(st.lists(st.tuples(restrictions(), st.booleans()), min_size=1, max_size=6)))
async def test_voiding_an_event_equals_never_recording_it(gql, agencies, scenario):
    """Recording events and then voiding some of them gives the same calendar restrictions and
    reasons (staff and each agency) and the same quote and createBooking decisions as recording,
    in the same order, only the ones not voided. (Voided rows are left out by the database reads
    before the resolver sees them, and the resolver skips them too: either alone keeps this true.)"""
    marked, probes = scenario
    event(f"voided {sum(v for _, v in marked)} of {len(marked)}")
    voided, kept = await fresh_inventory(gql, agencies), await fresh_inventory(gql, agencies)
    doomed = []
    for r, void_it in marked:
        event_id = await record(gql, voided, r)
        if void_it:
            doomed.append(event_id)
        else:
            await record(gql, kept, r)
    for event_id in doomed:
        await void(gql, event_id)
    assert await views(gql, voided) == await views(gql, kept)
    assert await decisions(gql, voided, probes) == await decisions(gql, kept, probes)


@settings(PROPERTIES, max_examples=20)
@given(scenarios(st.lists(st.tuples(restrictions(), st.sampled_from([False, False, True])), min_size=1, max_size=8),
                 max_stays=5, rooms=st.sampled_from([1, 1, 1, 2, 3])))
async def test_quote_and_create_booking_decide_alike(gql, agencies, scenario):
    """On the same inventory, a stay quote accepts createBooking accepts, and a stay quote refuses
    (RestrictionViolated, SoldOut) createBooking refuses with the same type and the same
    violations or shortfalls; bookings accepted along the way use up rooms for the next stays."""
    marked, probes = scenario
    inv = await fresh_inventory(gql, agencies, allotment=2)
    for r, void_it in marked:
        event_id = await record(gql, inv, r)
        if void_it:
            await void(gql, event_id)
    for stay in probes:
        quoted = await quote(gql, inv, stay)
        booked = await book(gql, inv, stay)
        event(f"quote: {quoted['__typename']}")
        assert quoted["__typename"] in ("Quote", "RestrictionViolated", "SoldOut"), quoted
        assert outcome(booked) == outcome(quoted), (stay, quoted, booked)
        if quoted["__typename"] == "Quote":
            assert booked["total"] == quoted["total"]


# --- the generators are what they say -----------------------------------------------------------------


def test_conflicts_are_what_last_wins_makes_order_sensitive():
    base = Restriction("STD", 0, 3, frozenset(), (("minStay", 2),))
    assert conflict(base, replace(base, fields=(("minStay", 3),)))
    assert not conflict(base, replace(base, fields=(("minStay", 2),)))  # same value
    assert not conflict(base, replace(base, fields=(("maxStay", 1),)))  # another field
    assert not conflict(base, replace(base, start=3, end=5, fields=(("minStay", 3),)))  # other nights
    assert not conflict(base, replace(base, room_type="SUP", fields=(("minStay", 3),)))
    one, other = replace(base, scope=frozenset({"A"})), replace(base, scope=frozenset({"B"}), fields=(("minStay", 3),))
    assert not conflict(one, other)  # no agency is bound by both
    assert conflict(base, other) and conflict(one, replace(other, scope=frozenset(AGENCIES)))


@settings(max_examples=50, deadline=None)
@given(st.lists(restrictions(), min_size=2, max_size=6), st.data())
def test_commuting_orders_keep_every_conflicting_pair_in_order(events, draws):
    assert respects_conflicts(events, draws.draw(commuting_orders(events)))
