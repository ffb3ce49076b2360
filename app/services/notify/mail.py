"""Email to agencies: rendering, and the dispatcher that sends the `email_message` outbox.

The fan-out renders each email once, when its partner event is turned into messages, and writes
the row; from then on the text never changes, so every retry sends the same bytes under the
same `Message-ID` (a receiver that gets one twice can drop the copy).

Any worker's dispatcher claims due rows with a lease (`FOR UPDATE SKIP LOCKED`, committed before
sending), sends them, and records the outcome. A worker killed mid-send leaves its rows leased;
when the lease lapses another worker sends them again: delivery is at least once. Without
SMTP_URL (development, tests) the rows are marked RECORDED and only logged.
"""

from __future__ import annotations

import asyncio
import email.utils
import html
import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage as MimeMessage
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import aiosmtplib
from sqlalchemy import func, select, update

from db.engine import transaction
from db.models import EmailMessage

if TYPE_CHECKING:
    from app.services.context import Services
    from app.settings import Settings

log = logging.getLogger(__name__)

# A claimed row is ours this long; a send takes at most SMTP_TIMEOUT_S per step, well inside it.
LEASE = timedelta(seconds=60)
SMTP_TIMEOUT_S = 10.0
# Sends in flight per worker: enough to drain a burst, few enough not to look like a flood to
# the relay (and each outcome briefly takes a pooled connection).
CONCURRENCY = 5
# Retry delays after the 1st, 2nd, ... failed attempt; then every RETRY_EVERY until GIVE_UP_AFTER
# (from when the row was written) has passed: an SMTP relay down for a weekend loses nothing.
BACKOFF = (timedelta(seconds=30), timedelta(minutes=2), timedelta(minutes=10), timedelta(minutes=30),
           timedelta(hours=1))
RETRY_EVERY = timedelta(hours=2)
JITTER = 0.2
GIVE_UP_AFTER = timedelta(days=3)
MAX_ERROR = 500
MAX_SUBJECT = 300  # email_message.subject


# --- rendering ---------------------------------------------------------------------------------

Rendered = tuple[str, str, str]


def render(kind: str, data: dict[str, Any]) -> Rendered:
    """(subject, plain-text body, HTML body) of an email of `kind` about `data`.

    Every value is escaped in the HTML (guest names and reasons are typed by people), and the
    subject is one line (a newline would be a header injection, and the email library refuses it).
    """
    try:
        template = _TEMPLATES[kind]
    except KeyError:
        raise ValueError(f"unknown email kind {kind!r}") from None
    subject, text_lines, html_parts = template(data)
    return _subject(subject), "\n".join(text_lines) + "\n", _page(subject, html_parts)


def _booking_confirmed(data: dict[str, Any]) -> tuple[str, list[str], list[str]]:
    currency = str(data["currency"])
    total = _money(data["total"], currency)
    subject = f"Booking {data['reference']} confirmed - {data['hotel_name']}"
    text = [
        _greeting(data),
        "",
        f"Booking {data['reference']} for {data['guest_name']} at {data['hotel_name']} is confirmed.",
        "",
        f"Sale order: {data['sale_order_number']}",
        f"Total: {total}",
    ]
    parts = [
        _p(_greeting(data)),
        _p(f"Booking <strong>{_e(data['reference'])}</strong> for {_e(data['guest_name'])} at "
           f"{_e(data['hotel_name'])} is confirmed."),
        _facts([("Sale order", data["sale_order_number"]), ("Total", total)]),
    ]
    for item in data["items"]:
        rooms = int(item["rooms"])
        stay = (f"{item['room_type']}: {rooms} room{'' if rooms == 1 else 's'}, "
                f"{item['check_in']} to {item['check_out']}")
        item_total = _money(item["total"], currency)
        text += ["", f"{stay}, {item_total}"]
        text += [f"  {night['date']}  {_money(night['sell'], currency)} per room" for night in item["nights"]]
        parts.append(_p(f"<strong>{_e(stay)}</strong>, {_e(item_total)}"))
        parts.append(_table(("Night", "Price per room"),
                            [(night["date"], _money(night["sell"], currency)) for night in item["nights"]],
                            right=(1,)))
    text += ["", _sign_off()]
    parts.append(_p(_sign_off()))
    return subject, text, parts


def _booking_cancelled(data: dict[str, Any]) -> tuple[str, list[str], list[str]]:
    subject = f"Booking {data['reference']} cancelled - {data['hotel_name']}"
    sentence = f"Booking {data['reference']} for {data['guest_name']} at {data['hotel_name']} has been cancelled."
    facts = [("Sale order", data["sale_order_number"])] if data.get("sale_order_number") else []
    if data.get("reason"):
        facts.append(("Reason", data["reason"]))
    text = [_greeting(data), "", sentence]
    if facts:
        text += ["", *(f"{label}: {value}" for label, value in facts)]
    text += ["", _sign_off()]
    return subject, text, [_p(_greeting(data)), _p(_e(sentence)), _facts(facts), _p(_sign_off())]


def _hold_expiring(data: dict[str, Any]) -> tuple[str, list[str], list[str]]:
    minutes = int(data["minutes_left"])
    subject = f"Hold {data['reference']} expires in {minutes} minute{'' if minutes == 1 else 's'}"
    sentence = (f"The hold {data['reference']} for {data['guest_name']} at {data['hotel_name']} expires at "
                f"{_when(data['expires_at'])}. Confirm it before then, or the rooms return to the pool.")
    text = [_greeting(data), "", sentence, "", _sign_off()]
    return subject, text, [_p(_greeting(data)), _p(_e(sentence)), _p(_sign_off())]


def _release_alert(data: dict[str, Any]) -> tuple[str, list[str], list[str]]:
    nights = data["nights"]
    subject = (f"Hardblock {data['reference']}: {len(nights)} unsold night{'' if len(nights) == 1 else 's'} "
               f"release within {data['hours']} h")
    sentence = (f"Unsold rooms of hardblock {data['reference']} ({data['room_type']} at {data['hotel_name']}) "
                f"return to the hotel's pool within {data['hours']} hours. Book them before their release "
                f"time to keep them.")
    rows = [(night["date"], _when(night["release_at"]), night["unsold"]) for night in nights]
    text = [_greeting(data), "", sentence, ""]
    text += [f"  {day}  releases {release_at}  {unsold} unsold" for day, release_at, unsold in rows]
    text += ["", _sign_off()]
    parts = [_p(_greeting(data)), _p(_e(sentence)),
             _table(("Night", "Releases at", "Unsold rooms"), rows, right=(2,)), _p(_sign_off())]
    return subject, text, parts


def _endpoint_disabled(data: dict[str, Any]) -> tuple[str, list[str], list[str]]:
    subject = "Webhook endpoint disabled"
    sentence = ("StaySync has stopped sending webhooks to one of your endpoints. Events are still "
                "recorded; re-enable the endpoint once it accepts deliveries again.")
    facts = [("Endpoint", data["url"]), ("Reason", data["reason"])]
    text = [_greeting(data), "", sentence, "", *(f"{label}: {value}" for label, value in facts), "", _sign_off()]
    return subject, text, [_p(_greeting(data)), _p(_e(sentence)), _facts(facts), _p(_sign_off())]


def _balance_due(data: dict[str, Any]) -> tuple[str, list[str], list[str]]:
    balance = _money(data["balance_due"], data["currency"])
    subject = f"Balance of {balance} due for sale order {data['sale_order_number']}"
    sentence = (f"The balance of sale order {data['sale_order_number']} (booking {data['reference']} for "
                f"{data['guest_name']} at {data['hotel_name']}) is due on {_when(data['due_at'])}. Please pay "
                f"{balance} by then.")
    facts = [("Sale order", data["sale_order_number"]), ("Total", _money(data["total"], data["currency"])),
             ("Balance due", balance), ("Due", _when(data["due_at"]))]
    text = [_greeting(data), "", sentence, "", *(f"{label}: {value}" for label, value in facts), "", _sign_off()]
    return subject, text, [_p(_greeting(data)), _p(_e(sentence)), _facts(facts), _p(_sign_off())]


_TEMPLATES: dict[str, Callable[[dict[str, Any]], tuple[str, list[str], list[str]]]] = {
    "booking_confirmed": _booking_confirmed,
    "booking_cancelled": _booking_cancelled,
    "hold_expiring": _hold_expiring,
    "release_alert": _release_alert,
    "endpoint_disabled": _endpoint_disabled,
    "balance_due": _balance_due,
}
KINDS = frozenset(_TEMPLATES)


def _greeting(data: dict[str, Any]) -> str:
    return f"Dear {data['agency_name']},"


def _sign_off() -> str:
    return "StaySync"


def _money(amount: Any, currency: str) -> str:
    """The amount with its currency once: amounts may already carry it ("120.00 EUR")."""
    amount = str(amount)
    return amount if currency in amount else f"{amount} {currency}"


def _when(value: Any) -> str:
    """An ISO UTC timestamp as people read it ("2026-12-01 14:05 UTC"); anything else as it is."""
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _subject(subject: str) -> str:
    line = " ".join(subject.split())
    return line if len(line) <= MAX_SUBJECT else line[:MAX_SUBJECT - 3] + "..."


def _e(value: Any) -> str:
    return html.escape(str(value))


# Inline styles only: mail clients strip <style> blocks and block external assets.
_FONT = "font-family:Arial,Helvetica,sans-serif;font-size:14px;line-height:1.5;color:#222"
_CELL = "padding:4px 12px 4px 0;border-bottom:1px solid #ddd;text-align:"


def _p(inner_html: str) -> str:
    """A paragraph of HTML that the caller has already escaped."""
    return f'<p style="margin:0 0 12px 0">{inner_html}</p>'


def _facts(facts: Iterable[tuple[str, Any]]) -> str:
    rows = "".join(f'<tr><th style="{_CELL}left">{_e(label)}</th><td style="{_CELL}left">{_e(value)}</td></tr>'
                   for label, value in facts)
    return f'<table style="border-collapse:collapse;margin:0 0 12px 0">{rows}</table>' if rows else ""


def _table(headings: tuple[str, ...], rows: Iterable[tuple[Any, ...]], *, right: tuple[int, ...] = ()) -> str:
    def cell(tag: str, index: int, value: Any) -> str:
        align = "right" if index in right else "left"
        return f'<{tag} style="{_CELL}{align}">{_e(value)}</{tag}>'

    head = "".join(cell("th", i, heading) for i, heading in enumerate(headings))
    body = "".join("<tr>" + "".join(cell("td", i, value) for i, value in enumerate(row)) + "</tr>" for row in rows)
    return (f'<table style="border-collapse:collapse;margin:0 0 16px 0"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table>")


def _page(title: str, parts: list[str]) -> str:
    return (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{_e(title)}</title></head>'
            f'<body style="{_FONT}"><div style="max-width:640px">{"".join(parts)}</div></body></html>\n')


# --- the message -------------------------------------------------------------------------------

def build_message(row: EmailMessage, settings: Settings) -> MimeMessage:
    """The MIME message of `row`: text and HTML alternatives, under the row's own Message-ID and
    dated when it was written, so that every retry is the same message."""
    message = MimeMessage()
    message["From"] = settings.smtp_from
    message["To"] = row.to_address
    message["Subject"] = row.subject
    message["Message-ID"] = row.message_id if row.message_id.startswith("<") else f"<{row.message_id}>"
    message["Date"] = email.utils.format_datetime(row.created_at or datetime.now(UTC))
    message.set_content(row.text_body)
    message.add_alternative(row.html_body, subtype="html")
    return message


@dataclass(frozen=True, slots=True)
class SmtpServer:
    """Where to send, from SMTP_URL: smtp://[user:password@]host[:port] (STARTTLS when offered)
    or smtps://... (TLS from the first byte)."""

    hostname: str
    port: int
    username: str | None
    password: str | None
    use_tls: bool

    @classmethod
    def from_url(cls, url: str) -> SmtpServer:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("SMTP_URL is smtp://[user:password@]host[:port] or smtps://...")
        use_tls = parts.scheme == "smtps"
        return cls(hostname=parts.hostname, port=parts.port or (465 if use_tls else 25),
                   username=unquote(parts.username) if parts.username else None,
                   password=unquote(parts.password) if parts.password else None, use_tls=use_tls)


async def _send(server: SmtpServer, message: MimeMessage) -> None:
    await aiosmtplib.send(message, hostname=server.hostname, port=server.port, username=server.username,
                          password=server.password, use_tls=server.use_tls, start_tls=None,
                          timeout=SMTP_TIMEOUT_S)


# --- the dispatcher ----------------------------------------------------------------------------

async def send_due_emails(services: Services, *, limit: int = 50, now: datetime | None = None) -> int:
    """Claim up to `limit` due emails, send them (or, without SMTP_URL, record them) and write down
    each outcome. Returns how many were claimed. `now` (tests) stands in for the database clock."""
    settings = services.settings
    # Parsed before claiming: a bad SMTP_URL fails the loop, not a batch of leased rows.
    server = SmtpServer.from_url(settings.smtp_url) if settings.smtp_url else None
    claimed, started = await _claim(services, limit, now)
    if not claimed:
        return 0
    clock = _clock_from(started)
    slots = asyncio.Semaphore(CONCURRENCY)

    async def one(row: EmailMessage) -> None:
        async with slots:
            await _dispatch(services, server, row, clock)

    outcomes = await asyncio.gather(*(one(row) for row in claimed), return_exceptions=True)
    for row, outcome in zip(claimed, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            # Its outcome was not written (the database went away?): the row stays leased, and is
            # sent again when the lease lapses.
            log.error("email %s: outcome not recorded", row.message_id, exc_info=outcome)
    return len(claimed)


async def _claim(services: Services, limit: int, now: datetime | None) -> tuple[list[EmailMessage], datetime]:
    """The due, unleased rows, leased to this worker (committed before any send, so a crash
    mid-send leaves them to another worker once the lease lapses)."""
    async with transaction(services.sessions) as session:
        at = now if now is not None else (await session.execute(select(func.now()))).scalar_one()
        due = (
            select(EmailMessage.id)
            .where(EmailMessage.status.in_(("PENDING", "FAILED")), EmailMessage.next_attempt_at <= at,
                   (EmailMessage.lease_until.is_(None)) | (EmailMessage.lease_until < at))
            .order_by(EmailMessage.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        claim = (
            update(EmailMessage)
            .where(EmailMessage.id.in_(due))
            .values(lease_until=at + LEASE, attempts=EmailMessage.attempts + 1)
            .returning(EmailMessage)
            .execution_options(synchronize_session=False)
        )
        rows = list((await session.scalars(claim)).all())
    return rows, at


def _clock_from(started: datetime) -> Callable[[], datetime]:
    """The claim's clock (the database's, or the test's `now`) advanced by the time since: one
    clock for the lease and for the outcomes, whatever this host's wall clock says."""
    origin = time.monotonic()
    return lambda: started + timedelta(seconds=time.monotonic() - origin)


async def _dispatch(services: Services, server: SmtpServer | None, row: EmailMessage,
                    clock: Callable[[], datetime]) -> None:
    if server is None:
        log.info("email %s recorded, not sent (no SMTP_URL): to %s, subject %r", row.message_id, row.to_address,
                 row.subject)
        await _record(services, row, status="RECORDED", at=clock())
        return
    try:
        message = build_message(row, services.settings)
    except (ValueError, TypeError) as error:
        # The row itself is malformed (a header the email library refuses): no retry can help.
        await _failed(services, row, _error_text(error, server), clock(), give_up=True)
        return
    try:
        await _send(server, message)
    except Exception as error:
        # Any failure of one email is that email's alone, and retried; one that is not the
        # network's or the server's is a bug worth a traceback.
        if not isinstance(error, (aiosmtplib.SMTPException, OSError, TimeoutError)):
            log.exception("email %s could not be sent", row.message_id)
        await _failed(services, row, _error_text(error, server), clock())
        return
    await _record(services, row, status="SENT", at=clock())


async def _record(services: Services, row: EmailMessage, *, status: str, at: datetime) -> None:
    """Sent (or recorded) is final, even if our lease lapsed meanwhile and another worker has the
    row: it may send it once more, and the receiver dedupes on Message-ID."""
    async with transaction(services.sessions) as session:
        await session.execute(
            update(EmailMessage)
            .where(EmailMessage.id == row.id, EmailMessage.status.in_(("PENDING", "FAILED")))
            .values(status=status, sent_at=at, lease_until=None, last_error=None)
            .execution_options(synchronize_session=False)
        )


async def _failed(services: Services, row: EmailMessage, error: str, at: datetime, *, give_up: bool = False) -> None:
    """Try again later, or give up once the row is GIVE_UP_AFTER old. Only while the row is still
    ours (same attempt): a later attempt by another worker owns the outcome then."""
    gave_up = give_up or at - row.created_at >= GIVE_UP_AFTER
    values: dict[str, Any] = {"last_error": error, "lease_until": None}
    if gave_up:
        values["status"] = "GAVE_UP"
    else:
        values.update(status="FAILED", next_attempt_at=at + retry_delay(row.attempts))
    async with transaction(services.sessions) as session:
        result = await session.execute(
            update(EmailMessage)
            .where(EmailMessage.id == row.id, EmailMessage.attempts == row.attempts,
                   EmailMessage.status.in_(("PENDING", "FAILED")))
            .values(**values)
            .execution_options(synchronize_session=False)
        )
    if result.rowcount == 0:  # type: ignore[attr-defined]
        return
    if gave_up:
        log.error("gave up on email %s to %s after %s attempts: %s", row.message_id, row.to_address, row.attempts,
                  error)
    else:
        log.warning("email %s to %s failed (attempt %s), retrying: %s", row.message_id, row.to_address,
                    row.attempts, error)


def retry_delay(attempts: int) -> timedelta:
    """How long after the `attempts`-th failed attempt to try again, with ±JITTER so that emails
    that failed together (the relay was down) do not all come back in the same second."""
    base = BACKOFF[attempts - 1] if 0 < attempts <= len(BACKOFF) else RETRY_EVERY
    return base * random.uniform(1 - JITTER, 1 + JITTER)


def _error_text(error: BaseException, server: SmtpServer) -> str:
    """What went wrong, short enough for the column and never with the SMTP password in it."""
    text = f"{type(error).__name__}: {error}"
    if server.password:
        text = text.replace(server.password, "***")
    return text[:MAX_ERROR]
