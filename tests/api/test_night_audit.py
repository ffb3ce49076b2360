"""The night audit: its figures, each inconsistency planted in the database the way a bug or a
manual SQL fix would leave it, idempotency and once-per-day under races, immutability, the
refusal of a day not over, the catch-up job, and staff-only access."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal

import orjson
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from app.api.ids import decode_id, to_global_id
from app.services import night_audit
from app.services.bookings import sweep_expired_holds
from db import models
from db.audit import Actor
from tests.api.test_bookings import book, confirm, count, expire_now, item, runtime_context, setup
from tests.api.test_calendar import START, insert_hardblock
from tests.support import data

AUDITOR = Actor(uid="auditor", role="admin")
D = START + timedelta(days=1)  # the business date under audit: the night of START + 1
AFTER_D = datetime.combine(D + timedelta(days=1), time(3), tzinfo=timezone.utc)  # the hotels here are in UTC

AUDITS = """
query($hotelId: ID!, $from: Date, $to: Date) { nightAudits(hotelId: $hotelId, from: $from, to: $to) {
  edges { node { id hotel { code } businessDate closedAt roomNightsSold revenue { amount currency } arrivals
                 departures holdsExpired overcommittedCells discrepancies { kind roomType { code } date detail } } }
} }
"""
RUN = """
mutation($hotelId: ID!, $day: Date!) { runNightAudit(hotelId: $hotelId, businessDate: $day) {
  id businessDate roomNightsSold revenue { amount currency } discrepancies { kind detail }
} }
"""


def at(day: date, hour: int) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=timezone.utc)


async def execute(sessions, sql, **params):
    async with sessions() as session, session.begin():
        return await session.execute(text(sql), params)


async def written_on_d(sessions, *group_ids):
    """Time travel for the audit log check: the groups were created (and confirmed) during D."""
    pks = [decode_id(g, "BookingGroup", "id") for g in group_ids]
    await execute(sessions, "UPDATE booking_group SET created_at = :t, confirmed_at = CASE WHEN confirmed_at IS NULL"
                  " THEN NULL ELSE CAST(:t AS timestamptz) + interval '5 minutes' END WHERE id = ANY(:ids)",
                  t=at(D, 10), ids=pks)


async def day_with_sales(gql, sessions):
    """Night D: A stays over it (2 rooms), B left that morning (1 room), C arrives (3 rooms), H is
    only held; one more hold lapsed during D and was swept."""
    hotel, ids, agencies = await setup(gql)
    sun = agencies["SUNTRAVEL"]
    groups = {}
    for name, stay in {"A": item(ids["STD"], 0, nights=2, rooms=2), "B": item(ids["STD"], 0, nights=1),
                       "C": item(ids["STD"], 1, nights=1, rooms=3)}.items():
        groups[name] = await book(gql, sun, stay)
        assert (await confirm(gql, groups[name]["id"]))["__typename"] == "SaleOrder"
    groups["H"] = await book(gql, sun, item(ids["SUP"], 1, nights=1))
    lapsed = await book(gql, sun, item(ids["SUP"], 1, nights=1))
    await expire_now(sessions, lapsed["id"])
    assert await sweep_expired_holds(runtime_context(gql)) == [decode_id(lapsed["id"], "BookingGroup", "id")]
    await execute(sessions, "UPDATE booking_group SET expires_at = :t WHERE id = :id", t=at(D, 11),
                  id=decode_id(lapsed["id"], "BookingGroup", "id"))
    await written_on_d(sessions, *(g["id"] for g in groups.values()), lapsed["id"])
    return hotel, ids, agencies, groups


async def audit(gql, hotel, day=D, now=AFTER_D):
    return await night_audit.run_night_audit(runtime_context(gql), AUDITOR, decode_id(hotel["id"], "Hotel", "id"),
                                             day, now=now)


def kinds(row):
    return sorted(d["kind"] for d in row.discrepancies)


def the(row, kind):
    found = [d for d in row.discrepancies if d["kind"] == kind]
    assert len(found) == 1, row.discrepancies
    return found[0]


# --- a clean day -----------------------------------------------------------------------------------


async def test_a_clean_day_has_its_figures_and_no_discrepancy(gql, sessions):
    # given
    hotel, ids, _, groups = await day_with_sales(gql, sessions)
    price = {name: Decimal(g["total"]["amount"]) for name, g in groups.items()}
    # when
    row = await audit(gql, hotel)
    # then
    assert row.discrepancies == []
    assert (row.business_date, row.room_nights_sold, row.arrivals, row.departures, row.holds_expired,
            row.overcommitted_cells) == (D, 5, 3, 1, 1, 0)
    assert (row.revenue_amount, row.revenue_currency) == (price["A"] / 2 + price["C"], "EUR")
    listed = data(await gql(AUDITS, {"hotelId": hotel["id"]}))["nightAudits"]["edges"]
    assert [e["node"]["businessDate"] for e in listed] == [D.isoformat()]
    node = listed[0]["node"]
    assert node["id"] == to_global_id("NightAudit", row.id) and node["hotel"] == {"code": "LIS"}
    assert node["revenue"] == {"amount": f"{row.revenue_amount:.2f}", "currency": "EUR"}
    assert node["discrepancies"] == [] and node["holdsExpired"] == 1
    closed = [e for e in await audit_entries(sessions, "NightAudit", row.id)]
    assert [(e.action, e.actor_uid, e.after["discrepancies"]) for e in closed] == [("night_audit.closed", "auditor", 0)]


async def audit_entries(sessions, entity_type, pk):
    async with sessions() as session:
        return list((await session.execute(select(models.AuditEntry).where(
            models.AuditEntry.entity_type == entity_type, models.AuditEntry.entity_id == pk))).scalars())


async def test_run_night_audit_over_graphql_closes_a_past_day_once(gql):
    hotel, _, _ = await setup(gql)
    yesterday = (datetime.now(timezone.utc) - timedelta(days=1)).date()
    first = data(await gql(RUN, {"hotelId": hotel["id"], "day": yesterday.isoformat()}))["runNightAudit"]
    again = data(await gql(RUN, {"hotelId": hotel["id"], "day": yesterday.isoformat()}))["runNightAudit"]
    assert first == again
    assert first["roomNightsSold"] == 0 and first["revenue"] == {"amount": "0.00", "currency": "EUR"}
    assert first["discrepancies"] == []
    window = {"hotelId": hotel["id"], "from": yesterday.isoformat(), "to": (yesterday + timedelta(days=1)).isoformat()}
    assert len(data(await gql(AUDITS, window))["nightAudits"]["edges"]) == 1
    window["from"] = window["to"]
    window["to"] = None
    assert data(await gql(AUDITS, window))["nightAudits"]["edges"] == []


# --- planted inconsistencies ---------------------------------------------------------------------------


async def test_a_booking_whose_rooms_were_changed_over_sells_the_pool(gql, sessions):
    hotel, ids, _, groups = await day_with_sales(gql, sessions)
    group = decode_id(groups["A"]["id"], "BookingGroup", "id")
    await execute(sessions, "UPDATE booking SET rooms = 9 WHERE group_id = :id", id=group)  # 9 + 3 > 10
    row = await audit(gql, hotel)
    assert kinds(row) == ["POOL_OVERSOLD"] and row.overcommitted_cells == 1
    found = the(row, "POOL_OVERSOLD")
    assert found["roomTypeId"] == decode_id(ids["STD"], "RoomType", "id") and found["date"] == D.isoformat()
    assert f"STD on {D.isoformat()}: 12 rooms committed (hardblocked 0 + held 0 + sold 12) against an allotment of " \
           "10: over-sold by 2" in found["detail"]


async def test_a_booking_row_out_of_step_with_its_group_is_a_cell_mismatch(gql, sessions):
    hotel, _, _, groups = await day_with_sales(gql, sessions)
    # A manual "cancel" that forgot the bookings' copy of the status and the sale order.
    await execute(sessions, "UPDATE booking_group SET status = 'CANCELLED' WHERE id = :id",
                  id=decode_id(groups["C"]["id"], "BookingGroup", "id"))
    row = await audit(gql, hotel)
    assert kinds(row) == ["CELL_MISMATCH", "SALE_ORDER_WITHOUT_CONFIRMED_GROUP"]
    assert f"STD on {D.isoformat()}: the calendar shows sold 5, but the pool bookings of CONFIRMED groups add up " \
           "to 2" in the(row, "CELL_MISMATCH")["detail"]
    assert f"booking group {groups['C']['reference']} is CANCELLED" in the(row, "SALE_ORDER_WITHOUT_CONFIRMED_GROUP")["detail"]


async def test_a_hold_marked_confirmed_by_hand_has_no_sale_order(gql, sessions):
    hotel, _, _, groups = await day_with_sales(gql, sessions)
    pk = decode_id(groups["H"]["id"], "BookingGroup", "id")
    await execute(sessions, "UPDATE booking_group SET status = 'CONFIRMED' WHERE id = :id", id=pk)
    await execute(sessions, "UPDATE booking SET status = 'CONFIRMED' WHERE group_id = :id", id=pk)
    row = await audit(gql, hotel)
    assert kinds(row) == ["MISSING_SALE_ORDER"]
    found = the(row, "MISSING_SALE_ORDER")
    assert f"booking group {groups['H']['reference']} is CONFIRMED but has no sale order" in found["detail"]
    assert row.room_nights_sold == 6  # it is sold all the same


async def test_a_sale_order_whose_total_was_edited(gql, sessions):
    hotel, _, _, groups = await day_with_sales(gql, sessions)
    pk = decode_id(groups["A"]["id"], "BookingGroup", "id")
    await execute(sessions, "UPDATE sale_order SET total_amount = total_amount - 10 WHERE group_id = :id", id=pk)
    row = await audit(gql, hotel)
    assert kinds(row) == ["SALE_ORDER_TOTAL_MISMATCH"]
    total = Decimal(groups["A"]["total"]["amount"])
    assert f"of booking group {groups['A']['reference']} totals {total - 10} EUR, but the group's bookings total " \
           f"{total} EUR" in the(row, "SALE_ORDER_TOTAL_MISMATCH")["detail"]


async def test_a_group_written_behind_the_apis_back_has_no_audit_entry(gql, sessions):
    hotel, ids, agencies, _ = await day_with_sales(gql, sessions)
    std = decode_id(ids["STD"], "RoomType", "id")
    # The audit log refuses DELETE: the write that skipped it is planted instead (a lapsed hold).
    group = (await execute(
        sessions, "INSERT INTO booking_group (reference, agency_id, status, guest_name, expires_at, created_by,"
        " created_at)"
        " VALUES ('BG-SNEAKY', :agency, 'HELD', 'Eve', :lapsed, 'psql', :created) RETURNING id",
        agency=decode_id(agencies["SUNTRAVEL"], "Agency", "id"), lapsed=at(D, 9), created=at(D, 8))).scalar_one()
    await execute(sessions, "INSERT INTO booking (group_id, agency_id, hotel_id, room_type_id, check_in, check_out,"
                  " rooms, status, expires_at, total_amount, currency) VALUES (:group, :agency, :hotel, :rt, :d, :d2, 1,"
                  " 'HELD', :lapsed, 99.50, 'EUR')", group=group, agency=decode_id(agencies["SUNTRAVEL"], "Agency", "id"),
                  hotel=decode_id(hotel["id"], "Hotel", "id"), rt=std, d=D, d2=D + timedelta(days=1), lapsed=at(D, 9))
    row = await audit(gql, hotel)
    assert kinds(row) == ["AUDIT_ENTRY_MISSING"]
    assert "booking group BG-SNEAKY was created at " + at(D, 8).isoformat() + " but the audit log has no " \
           "booking_group.created entry" in the(row, "AUDIT_ENTRY_MISSING")["detail"]


async def test_a_block_night_booked_beyond_its_size(gql, sessions):
    hotel, ids, agencies = await setup(gql)
    std = decode_id(ids["STD"], "RoomType", "id")
    block = await insert_hardblock(sessions, hotel, std, decode_id(agencies["SUNTRAVEL"], "Agency", "id"), rooms=2)
    group = await book(gql, agencies["SUNTRAVEL"], item(ids["STD"], 1, nights=1, rooms=2,
                                                        hardblock_id=to_global_id("Hardblock", block)))
    await confirm(gql, group["id"])
    await execute(sessions, "UPDATE booking SET rooms = 3 WHERE group_id = :id",
                  id=decode_id(group["id"], "BookingGroup", "id"))
    row = await audit(gql, hotel)
    assert "BLOCK_OVERSOLD" in kinds(row)
    assert f"hardblock HB-1 (STD) on {D.isoformat()}: 3 rooms booked from it, but it holds 2: over-sold by 1" \
           in the(row, "BLOCK_OVERSOLD")["detail"]


async def test_a_partial_supplier_run_and_its_overcommitted_contract(gql, sessions):
    hotel, ids, _, _ = await day_with_sales(gql, sessions)
    supplier = (await execute(sessions, "INSERT INTO supplier (code, name, kind) VALUES ('ACME', 'Acme', 'HTTP')"
                              " RETURNING id")).scalar_one()
    await execute(sessions, "UPDATE contract SET supplier_id = :s WHERE external_id = 'C-STD'", s=supplier)
    issues = [{"external_id": "C-STD", "kind": "OVERCOMMITTED", "message": "2 nights over"},
              {"external_id": "X-9", "kind": "INVALID_RECORD", "message": "allotment is not a number"}]
    await execute(sessions, "INSERT INTO sync_run (source, supplier_id, trigger, status, started_at, finished_at,"
                  " issues) VALUES ('ACME', :s, 'SCHEDULE', 'PARTIAL', :t, :t, CAST(:issues AS jsonb))", s=supplier,
                  t=at(D, 5), issues=orjson.dumps(issues).decode())
    # A clean run the same day, and a partial one the day before, are not this day's business.
    await execute(sessions, "INSERT INTO sync_run (source, supplier_id, status, started_at) VALUES"
                  " ('ACME', :s, 'SUCCEEDED', :t), ('ACME', :s, 'FAILED', :before)", s=supplier, t=at(D, 6),
                  before=at(D, 0) - timedelta(seconds=1))
    row = await audit(gql, hotel)
    assert kinds(row) == ["SUPPLIER_OVERCOMMITTED", "SYNC_RUN_PARTIAL"]
    run = the(row, "SYNC_RUN_PARTIAL")["detail"]
    assert "supplier ACME sync run 1" in run and "ended PARTIAL with 1 INVALID_RECORD, 1 OVERCOMMITTED" in run
    assert "X-9: allotment is not a number" in run
    over = the(row, "SUPPLIER_OVERCOMMITTED")
    assert over["roomTypeId"] == decode_id(ids["STD"], "RoomType", "id") and "contract C-STD (STD)" in over["detail"]


# --- once, and for good --------------------------------------------------------------------------------


async def test_concurrent_runs_close_the_day_once(gql, sessions):
    hotel, _, _, _ = await day_with_sales(gql, sessions)
    rows = await asyncio.gather(*(audit(gql, hotel) for _ in range(5)))
    assert len({row.id for row in rows}) == 1
    assert await count(sessions, models.NightAudit) == 1
    assert len(await audit_entries(sessions, "NightAudit", rows[0].id)) == 1
    again = await audit(gql, hotel, now=AFTER_D + timedelta(days=3))
    assert (again.id, again.closed_at) == (rows[0].id, rows[0].closed_at)


async def test_a_closed_day_cannot_be_edited_or_removed(gql, sessions):
    hotel, _, _ = await setup(gql)
    row = await audit(gql, hotel)
    for statement in ("UPDATE night_audit SET room_nights_sold = 99", "DELETE FROM night_audit"):
        with pytest.raises(DBAPIError, match="night_audit is immutable"):
            await execute(sessions, statement)
    assert await count(sessions, models.NightAudit, models.NightAudit.room_nights_sold == row.room_nights_sold) == 1


async def test_a_day_not_over_yet_is_refused(gql):
    hotel, _, _ = await setup(gql)
    for day in (datetime.now(timezone.utc).date(), START):
        result = await gql(RUN, {"hotelId": hotel["id"], "day": day.isoformat()})
        assert result["data"] is None
        error = result["errors"][0]
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
        assert f"business date {day.isoformat()} has not ended yet in the hotel's time zone UTC" in error["message"]
    with pytest.raises(Exception, match="has not ended yet"):
        await audit(gql, hotel, day=D, now=at(D, 23))
    unknown = await gql(RUN, {"hotelId": to_global_id("Hotel", 999), "day": "2020-01-01"})
    assert unknown["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_only_staff_see_and_run_night_audits(gql):
    hotel, _, _ = await setup(gql)
    yesterday = (datetime.now(timezone.utc) - timedelta(days=1)).isoformat()[:10]
    for document, variables in ((AUDITS, {"hotelId": hotel["id"]}), (RUN, {"hotelId": hotel["id"], "day": yesterday})):
        refused = await gql(document, variables, role="agent", agency="SUNTRAVEL")
        assert refused["data"] is None and refused["errors"]
    ran = data(await gql(RUN, {"hotelId": hotel["id"], "day": yesterday}, role="operator"))["runNightAudit"]
    node = "query($id: ID!) { node(id: $id) { id } }"
    assert data(await gql(node, {"id": ran["id"]}, role="agent", agency="SUNTRAVEL"))["node"] is None
    assert data(await gql(node, {"id": ran["id"]}))["node"] == {"id": ran["id"]}


# --- the job --------------------------------------------------------------------------------------------


async def test_the_job_catches_up_missed_days_in_order_once(gql, sessions):
    hotel, _, _, _ = await day_with_sales(gql, sessions)  # the first activity: the contracts from START
    services = runtime_context(gql)
    # 01:00 on START + 4: the hour has not come, so the last day due is START + 2.
    assert await night_audit.catch_up(services, now=at(START + timedelta(days=4), 1)) == 3
    assert await night_audit.catch_up(services, now=at(START + timedelta(days=4), 3)) == 1  # START + 3 now too
    assert await night_audit.catch_up(services, now=at(START + timedelta(days=4), 4)) == 0
    async with sessions() as session:
        rows = (await session.execute(select(models.NightAudit.business_date, models.NightAudit.room_nights_sold,
                                             models.NightAudit.created_by).order_by(models.NightAudit.id))).all()
    assert rows == [(START, 3, "system"), (D, 5, "system"), (D + timedelta(days=1), 0, "system"),
                    (D + timedelta(days=2), 0, "system")]
    assert (await audit(gql, hotel)).room_nights_sold == 5  # the job's row


async def test_the_job_reaches_back_thirty_days_at_most(gql, sessions):
    await setup(gql)
    services = runtime_context(gql)
    now = at(START + timedelta(days=40), 12)
    assert await night_audit.catch_up(services, now=now) == 30
    async with sessions() as session:
        first = (await session.execute(select(func.min(models.NightAudit.business_date)))).scalar_one()
    assert first == START + timedelta(days=10)
