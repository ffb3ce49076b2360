"""Email to agencies: every kind renders (escaped), and the dispatcher delivers each email_message
row at least once and, in the normal course, exactly once: through an SMTP outage, past another
worker's lease, and not at all (only recorded) without SMTP_URL. Real PostgreSQL, a real SMTP
server (aiosmtpd) on loopback."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage as MimeMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select, update

from app.services.changes import OutboxRelay
from app.services.context import Services, raw_pool
from app.services.notify import mail
from app.services.notify.mail import BACKOFF, RETRY_EVERY, render, retry_delay, send_due_emails
from db import models
from db.engine import transaction

EVIL = "<script>alert(1)</script>"

SAMPLES: dict[str, dict[str, Any]] = {
    "booking_confirmed": {
        "agency_name": "Blue Wave Travel", "reference": "BG-1042", "sale_order_number": "SO-2026-000017",
        "guest_name": EVIL, "hotel_name": "Hotel Miramar", "currency": "EUR", "total": "330.00 EUR",
        "items": [{"room_type": "Double Sea View", "check_in": "2026-12-01", "check_out": "2026-12-03", "rooms": 1,
                   "total": "330.00 EUR", "nights": [{"date": "2026-12-01", "sell": "150.00 EUR"},
                                                     {"date": "2026-12-02", "sell": "180.00 EUR"}]}],
    },
    "booking_cancelled": {
        "agency_name": "Blue Wave Travel", "reference": "BG-1042", "guest_name": EVIL, "hotel_name": "Hotel Miramar",
        "sale_order_number": "SO-2026-000017", "reason": "Guest changed plans",
    },
    "hold_expiring": {
        "agency_name": "Blue Wave Travel", "reference": "BG-1043", "guest_name": EVIL, "hotel_name": "Hotel Miramar",
        "expires_at": "2026-12-01T14:05:00+00:00", "minutes_left": 5,
    },
    "release_alert": {
        "agency_name": "Blue Wave Travel", "reference": "HB-7", "hotel_name": "Hotel Miramar",
        "room_type": "Double Sea View", "hours": 48,
        "nights": [{"date": "2026-12-10", "release_at": "2026-12-03T00:00:00+00:00", "unsold": 3},
                   {"date": "2026-12-11", "release_at": "2026-12-04T00:00:00+00:00", "unsold": 2}],
    },
    "endpoint_disabled": {
        "agency_name": "Blue Wave Travel", "url": "https://hooks.bluewave.example/staysync?a=1&b=2",
        "reason": "410 Gone",
    },
}

FACTS = {
    "booking_confirmed": ["BG-1042", "SO-2026-000017", "Hotel Miramar", "Double Sea View", "2026-12-01",
                          "2026-12-03", "150.00 EUR", "180.00 EUR", "330.00 EUR"],
    "booking_cancelled": ["BG-1042", "SO-2026-000017", "Hotel Miramar", "Guest changed plans"],
    "hold_expiring": ["BG-1043", "Hotel Miramar", "2026-12-01 14:05 UTC"],
    "release_alert": ["HB-7", "Hotel Miramar", "Double Sea View", "48", "2026-12-10", "2026-12-11",
                      "2026-12-03 00:00 UTC"],
    "endpoint_disabled": ["410 Gone"],
}


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_every_kind_renders_its_facts_and_escapes_html(kind: str) -> None:
    subject, text, html_body = render(kind, SAMPLES[kind])
    assert subject and "\n" not in subject
    assert "Blue Wave Travel" in text and "Blue Wave Travel" in html_body
    for fact in FACTS[kind]:
        assert fact in text, fact
        assert fact in html_body, fact
    assert "<script>" not in html_body
    if "guest_name" in SAMPLES[kind]:
        assert EVIL in text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html_body
    assert not any(tag in html_body for tag in ("<img", "<link", "<style", "src=")), "no external assets"


def test_render_details() -> None:
    subject, _, _ = render("booking_confirmed", SAMPLES["booking_confirmed"])
    assert "BG-1042" in subject and "confirmed" in subject
    _, text, html_body = render("endpoint_disabled", SAMPLES["endpoint_disabled"])
    assert "https://hooks.bluewave.example/staysync?a=1&b=2" in text
    assert "https://hooks.bluewave.example/staysync?a=1&amp;b=2" in html_body
    _, text, _ = render("booking_cancelled", {**SAMPLES["booking_cancelled"], "sale_order_number": None, "reason": ""})
    assert "Sale order" not in text and "Reason" not in text
    # Amounts without their currency get it once.
    _, text, _ = render("booking_confirmed", {**SAMPLES["booking_confirmed"], "total": "330.00"})
    assert "Total: 330.00 EUR" in text
    # A newline typed into a name cannot inject a header.
    subject, _, _ = render("booking_cancelled", {**SAMPLES["booking_cancelled"], "reference": "BG-1\r\nBcc: x@y"})
    assert "\n" not in subject and "\r" not in subject
    with pytest.raises(ValueError):
        render("birthday_card", {})


def test_backoff_grows_with_jitter_then_settles() -> None:
    for attempts, base in [(1, BACKOFF[0]), (2, BACKOFF[1]), (5, BACKOFF[4]), (6, RETRY_EVERY), (40, RETRY_EVERY)]:
        delays = {retry_delay(attempts) for _ in range(20)}
        assert all(base * 0.8 <= delay <= base * 1.2 for delay in delays)
        assert len(delays) > 1


def test_smtp_url_parsing() -> None:
    server = mail.SmtpServer.from_url("smtp://mailer:p%40ss@relay.example")
    assert (server.hostname, server.port, server.username, server.password, server.use_tls) == \
        ("relay.example", 25, "mailer", "p@ss", False)
    server = mail.SmtpServer.from_url("smtps://relay.example")
    assert (server.port, server.username, server.use_tls) == (465, None, True)
    assert mail.SmtpServer.from_url("smtp://127.0.0.1:2525").port == 2525
    with pytest.raises(ValueError):
        mail.SmtpServer.from_url("http://relay.example")


# --- the dispatcher ----------------------------------------------------------------------------

class Inbox:
    """An aiosmtpd handler that keeps every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[MimeMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))  # type: ignore[arg-type]
        return "250 OK"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class SmtpServer:
    """A real SMTP server on a loopback port that can be stopped and started again (an outage)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.inbox = Inbox()
        self._controller: Controller | None = None

    def start(self) -> None:
        self._controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer(free_port())
    server.start()
    yield server
    server.stop()


def services_for(settings: Any, sessions: Any, smtp_url: str | None) -> Services:
    configured = settings.model_copy(update={"smtp_url": smtp_url})
    return Services(configured, sessions, OutboxRelay(sessions, _ignore), raw_pool(configured))


async def _ignore(channel: str, message: str) -> None:
    return None


@pytest.fixture
async def mailer(settings: Any, sessions: Any, smtp: SmtpServer, db: None) -> AsyncIterator[Services]:
    services = services_for(settings, sessions, f"smtp://127.0.0.1:{smtp.port}")
    yield services
    await services.raw.close()


async def add_email(sessions: Any, n: int = 1, **values: Any) -> int:
    """An email_message row as the fan-out writes it (rendered, PENDING, due now)."""
    subject, text, html_body = render("booking_confirmed", SAMPLES["booking_confirmed"])
    row = models.EmailMessage(**{"kind": "booking_confirmed", "to_address": f"agent{n}@bluewave.example",
                                 "subject": subject, "text_body": text, "html_body": html_body,
                                 "message_id": f"<email-{n}@staysync.test>", **values})
    async with transaction(sessions) as session:
        session.add(row)
        await session.flush()
        return row.id


async def email_row(sessions: Any, pk: int) -> models.EmailMessage:
    async with sessions() as session:
        return (await session.execute(select(models.EmailMessage).where(models.EmailMessage.id == pk))).scalar_one()


async def set_row(sessions: Any, pk: int, **values: Any) -> None:
    async with transaction(sessions) as session:
        await session.execute(update(models.EmailMessage).where(models.EmailMessage.id == pk).values(**values))


async def test_delivered_once_with_its_message_id_and_both_parts(mailer: Services, smtp: SmtpServer,
                                                                 sessions: Any) -> None:
    pk = await add_email(sessions)
    assert await send_due_emails(mailer) == 1
    assert await send_due_emails(mailer) == 0

    assert len(smtp.inbox.messages) == 1
    message = smtp.inbox.messages[0]
    assert message["Message-ID"] == "<email-1@staysync.test>"
    assert message["To"] == "agent1@bluewave.example"
    assert message["From"] == mailer.settings.smtp_from
    assert "BG-1042" in message["Subject"] and message["Date"]
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",)).get_content()
    html_body = message.get_body(("html",)).get_content()
    assert "SO-2026-000017" in text and "180.00 EUR" in text
    assert "&lt;script&gt;" in html_body and "<table" in html_body

    row = await email_row(sessions, pk)
    assert (row.status, row.attempts, row.lease_until, row.last_error) == ("SENT", 1, None, None)
    assert row.sent_at is not None


async def test_an_smtp_outage_loses_nothing_and_sends_once(mailer: Services, smtp: SmtpServer,
                                                          sessions: Any) -> None:
    pk = await add_email(sessions)
    smtp.stop()

    assert await send_due_emails(mailer) == 1
    row = await email_row(sessions, pk)
    assert row.status == "FAILED" and row.attempts == 1 and row.lease_until is None
    assert row.last_error and len(row.last_error) <= 500
    assert row.next_attempt_at > datetime.now(UTC) + timedelta(seconds=20)
    assert await send_due_emails(mailer) == 0, "not due again before its backoff"

    smtp.start()
    assert await send_due_emails(mailer) == 0, "still waiting out its backoff"
    await set_row(sessions, pk, next_attempt_at=datetime.now(UTC) - timedelta(seconds=1))
    assert await send_due_emails(mailer) == 1
    assert await send_due_emails(mailer) == 0

    assert [m["Message-ID"] for m in smtp.inbox.messages] == ["<email-1@staysync.test>"]
    row = await email_row(sessions, pk)
    assert (row.status, row.attempts, row.last_error) == ("SENT", 2, None)


async def test_the_smtp_password_never_reaches_last_error(settings: Any, sessions: Any, db: None) -> None:
    services = services_for(settings, sessions, f"smtp://mailer:s3cret-pw@127.0.0.1:{free_port()}")
    try:
        pk = await add_email(sessions)
        assert await send_due_emails(services) == 1
        row = await email_row(sessions, pk)
        assert row.status == "FAILED" and "s3cret-pw" not in (row.last_error or "")
    finally:
        await services.raw.close()


async def test_gives_up_after_days_of_failures(settings: Any, sessions: Any, db: None,
                                               caplog: pytest.LogCaptureFixture) -> None:
    services = services_for(settings, sessions, f"smtp://127.0.0.1:{free_port()}")
    try:
        pk = await add_email(sessions, created_at=datetime.now(UTC) - timedelta(days=3, minutes=1), attempts=35)
        with caplog.at_level(logging.ERROR, logger=mail.__name__):
            assert await send_due_emails(services) == 1
        row = await email_row(sessions, pk)
        assert row.status == "GAVE_UP" and row.attempts == 36
        assert "email-1@staysync.test" in caplog.text
        assert await send_due_emails(services) == 0
    finally:
        await services.raw.close()


async def test_a_malformed_row_is_given_up_at_once(mailer: Services, smtp: SmtpServer, sessions: Any) -> None:
    pk = await add_email(sessions, to_address="agent@bluewave.example\r\nBcc: everyone@example.com")
    assert await send_due_emails(mailer) == 1
    row = await email_row(sessions, pk)
    assert row.status == "GAVE_UP" and row.attempts == 1
    assert row.last_error and row.last_error.startswith("ValueError")
    assert smtp.inbox.messages == []


async def test_a_leased_row_waits_for_its_lease_to_lapse(mailer: Services, smtp: SmtpServer, sessions: Any) -> None:
    now = datetime.now(UTC)
    held = await add_email(sessions, 1, lease_until=now + timedelta(seconds=30), attempts=1)
    lapsed = await add_email(sessions, 2, lease_until=now - timedelta(seconds=1), attempts=1)

    assert await send_due_emails(mailer) == 1
    assert [m["Message-ID"] for m in smtp.inbox.messages] == ["<email-2@staysync.test>"]
    assert (await email_row(sessions, held)).status == "PENDING"
    row = await email_row(sessions, lapsed)
    assert (row.status, row.attempts) == ("SENT", 2)

    # The worker that held the lease died; once its lease lapses, this one sends it.
    assert await send_due_emails(mailer, now=now + timedelta(seconds=31)) == 1
    assert [m["Message-ID"] for m in smtp.inbox.messages] == ["<email-2@staysync.test>", "<email-1@staysync.test>"]
    assert (await email_row(sessions, held)).status == "SENT"


async def test_a_claim_takes_due_rows_only_up_to_the_limit(mailer: Services, smtp: SmtpServer,
                                                          sessions: Any) -> None:
    for n in range(1, 6):
        await add_email(sessions, n)
    await add_email(sessions, 6, next_attempt_at=datetime.now(UTC) + timedelta(minutes=5))
    await add_email(sessions, 7, status="SENT")
    assert await send_due_emails(mailer, limit=3) == 3
    assert await send_due_emails(mailer, limit=3) == 2
    assert await send_due_emails(mailer, limit=3) == 0
    assert sorted(m["Message-ID"] for m in smtp.inbox.messages) == [f"<email-{n}@staysync.test>" for n in range(1, 6)]


async def test_workers_claiming_together_send_each_email_once(mailer: Services, smtp: SmtpServer,
                                                               sessions: Any) -> None:
    for n in range(1, 21):
        await add_email(sessions, n)
    handled = await asyncio.gather(*(send_due_emails(mailer, limit=8) for _ in range(4)))
    while sum(handled) < 20 and (more := await send_due_emails(mailer, limit=8)):
        handled.append(more)
    assert sum(handled) == 20
    assert sorted(m["Message-ID"] for m in smtp.inbox.messages) == \
        sorted(f"<email-{n}@staysync.test>" for n in range(1, 21))


async def test_without_smtp_url_emails_are_recorded_and_logged(settings: Any, sessions: Any, smtp: SmtpServer,
                                                               db: None, caplog: pytest.LogCaptureFixture) -> None:
    services = services_for(settings, sessions, None)
    try:
        pk = await add_email(sessions)
        with caplog.at_level(logging.INFO, logger=mail.__name__):
            assert await send_due_emails(services) == 1
        assert await send_due_emails(services) == 0
    finally:
        await services.raw.close()

    row = await email_row(sessions, pk)
    assert row.status == "RECORDED" and row.lease_until is None and row.attempts == 1
    assert smtp.inbox.messages == []
    assert "agent1@bluewave.example" in caplog.text and "<email-1@staysync.test>" in caplog.text
    assert row.subject in caplog.text
    assert "SO-2026-000017" not in caplog.text, "the body stays out of the log"
