"""Balance-due reminders of DEPOSIT sales: written once per sale order however many workers look,
only while something is owed and the due date is within BALANCE_REMINDER_DAYS, and sent through
the email outbox to an SMTP server on loopback."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from aiosmtpd.controller import Controller
from sqlalchemy import select, update

from app.services.notify.mail import send_due_emails
from app.services.notify.reminders import remind_balances_due
from db import models
from tests.api.test_bookings import book, confirm, item, setup
from tests.api.test_cancellation_fees import card_payment
from tests.api.test_payment_terms import create_agency
from tests.api.test_refunds import record
from tests.notify.test_alerts import Inbox, contact
from tests.notify.test_mail import free_port
from tests.notify.test_webhooks import rows, runtime_of


async def deposit_sale(gql, sessions, settings, code, ids, balance_due_days):
    """A confirmed sale of a 30 % DEPOSIT agency whose deposit was paid by card."""
    agency = await create_agency(gql, code, paymentTerms="DEPOSIT", depositPercent=30,
                                 balanceDueDays=balance_due_days)
    await contact(gql, agency["id"], f"accounts@{code.lower()}.example")
    group = await book(gql, agency["id"], item(ids["STD"], nights=2))
    total = Decimal(group["total"]["amount"])
    deposit = (total * Decimal("0.3")).quantize(Decimal("0.01"))
    await card_payment(settings, sessions, group["id"], deposit)
    order = await confirm(gql, group["id"])
    assert order["__typename"] == "SaleOrder", order
    return group, order, total - deposit


async def test_a_balance_falling_due_is_reminded_once_and_sent(gql, sessions, settings):
    services = runtime_of(gql).services
    hotel, ids, _ = await setup(gql)
    # START is 60 days ahead: due 58 days before arrival = in 2 days (within 3); 30 days before: not yet
    group, order, balance = await deposit_sale(gql, sessions, settings, "SOON", ids, 58)
    await deposit_sale(gql, sessions, settings, "LATER", ids, 30)
    _, settled, rest = await deposit_sale(gql, sessions, settings, "SETTLED", ids, 59)
    assert (await record(gql, settled["id"], str(rest)))["__typename"] == "Payment"

    # several workers at once, and again later: one email per sale order
    written = await asyncio.gather(*(remind_balances_due(services) for _ in range(4)))
    assert sum(written) == 1 and await remind_balances_due(services) == 0
    claims = await rows(sessions, models.BalanceReminder)
    assert len(claims) == 2  # SOON's, and SETTLED's (claimed, nothing owed: no email)
    [email] = await rows(sessions, models.EmailMessage, models.EmailMessage.kind == "balance_due")
    assert email.to_address == "accounts@soon.example"
    assert order["number"] in email.subject and f"{balance} EUR" in email.subject
    assert any(c.email_id == email.id for c in claims)

    port = free_port()
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        smtp = replace(services, settings=services.settings.model_copy(
            update={"smtp_url": f"smtp://127.0.0.1:{port}"}))
        async with sessions() as session, session.begin():
            await session.execute(update(models.EmailMessage).values(next_attempt_at=datetime.now(UTC)))
        await send_due_emails(smtp)
    finally:
        controller.stop()
    text = b"".join(inbox.messages).decode()
    assert order["number"] in text and group["reference"] in text and "Ada Lovelace" in text


async def test_a_cancelled_sale_or_another_terms_is_not_reminded(gql, sessions, settings):
    services = runtime_of(gql).services
    hotel, ids, agencies = await setup(gql)
    group, order, _ = await deposit_sale(gql, sessions, settings, "GONE", ids, 58)
    from tests.api.test_bookings import cancel
    await cancel(gql, group["id"])
    credit = await book(gql, agencies["SUNTRAVEL"], item(ids["SUP"]))
    await confirm(gql, credit["id"])
    assert await remind_balances_due(services) == 0
    async with sessions() as session:
        assert (await session.execute(select(models.BalanceReminder))).first() is None
