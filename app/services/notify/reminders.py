"""Balance-due reminders: the agency of a confirmed DEPOSIT sale is emailed once when its balance
falls due within BALANCE_REMINDER_DAYS and something is still owed on it (domain `outstanding`
over the sale's ledger). Once per sale order across workers: a `balance_reminder` row is claimed
with INSERT ... ON CONFLICT DO NOTHING in the transaction that writes the email, so exactly one
transaction wins each sale (a sale already settled is claimed without an email)."""

from __future__ import annotations

from sqlalchemy import text

from app.services.context import Services
from app.services.notify import mail
from app.services.payments.ledger import owed
from db import models
from db.engine import transaction
from db.queries import ledger_by_group
from domain import format_amount

_DUE_SOON = text("""
SELECT s.id, s.number, s.group_id, s.total_amount, s.currency, s.balance_due_at, a.id AS agency_id,
       a.name AS agency_name, a.contact_email, g.reference, g.guest_name,
       (SELECT h.name FROM booking AS b JOIN hotel AS h ON h.id = b.hotel_id WHERE b.group_id = s.group_id
        ORDER BY b.id LIMIT 1) AS hotel_name
FROM sale_order AS s
JOIN agency AS a ON a.id = s.agency_id
JOIN booking_group AS g ON g.id = s.group_id
WHERE s.status = 'CONFIRMED' AND s.balance_due_at IS NOT NULL AND a.payment_terms = 'DEPOSIT'
  AND s.balance_due_at <= statement_timestamp() + make_interval(days => :days)
  AND NOT EXISTS (SELECT 1 FROM balance_reminder AS r WHERE r.sale_order_id = s.id)
ORDER BY s.balance_due_at, s.id
LIMIT :limit
""")
_CLAIM = text("INSERT INTO balance_reminder (sale_order_id) SELECT unnest(CAST(:ids AS integer[])) "
              "ON CONFLICT DO NOTHING RETURNING sale_order_id")
_EMAILED = text("UPDATE balance_reminder AS r SET email_id = x.email_id FROM unnest(CAST(:ids AS integer[]),"
                " CAST(:emails AS integer[])) AS x(sale_order_id, email_id) WHERE r.sale_order_id = x.sale_order_id")


async def remind_balances_due(services: Services, *, limit: int = 200) -> int:
    """Write the balance reminders that are due (email_message rows, sent by the mail
    dispatcher); returns how many emails were written."""
    async with transaction(services.sessions) as session:
        rows = list((await session.execute(_DUE_SOON, {"days": services.settings.balance_reminder_days,
                                                        "limit": limit})).mappings())
        if not rows:
            return 0
        won = set((await session.execute(_CLAIM, {"ids": [row["id"] for row in rows]})).scalars())
        rows = [row for row in rows if row["id"] in won]  # the others, another worker reminded
        ledgers = await ledger_by_group(session, [row["group_id"] for row in rows])
        emails: dict[int, models.EmailMessage] = {}
        for row in rows:
            balance = owed(ledgers.get(row["group_id"], []), row["currency"])
            if balance.amount <= 0 or not row["contact_email"]:
                continue  # settled, or nowhere to write: claimed all the same, nothing to remind
            subject, text_body, html_body = mail.render("balance_due", {
                "agency_name": row["agency_name"], "hotel_name": row["hotel_name"] or "",
                "reference": row["reference"], "guest_name": row["guest_name"], "sale_order_number": row["number"],
                "total": str(row["total_amount"]), "currency": row["currency"],
                "balance_due": format_amount(balance.amount, balance.currency), "due_at": row["balance_due_at"].isoformat()})
            emails[row["id"]] = models.EmailMessage(
                agency_id=row["agency_id"], kind="balance_due", to_address=row["contact_email"], subject=subject,
                text_body=text_body, html_body=html_body, message_id=f"<balance-due-{row['id']}@staysync>")
        if emails:
            session.add_all(emails.values())
            await session.flush()
            await session.execute(_EMAILED, {"ids": list(emails), "emails": [e.id for e in emails.values()]})
    return len(emails)
