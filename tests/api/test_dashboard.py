"""GET /dashboard: a self-contained page (no external origin, no cookie, a strict CSP), and the same
page in a real browser (Debian's chromium, headless) against a live server with demo-like data:
its charts are drawn and its revenue per agency is revenueReport's."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.api.test_bookings import book, confirm, item, setup
from tests.api.test_calendar import START
from tests.api.test_catalog import UPSERT_CONTRACT, contract_input
from tests.api.test_hardblocks import CREATE_BLOCK
from tests.api.test_night_audit import RUN
from tests.api.test_reports import PICKUP, REVENUE, UTILISATION
from tests.support import LiveServer, data, token

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install chromium)")


async def test_the_page_is_self_contained_with_a_strict_csp_and_no_cookie(client):
    response = await client.get("/dashboard")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "set-cookie" not in response.headers
    assert "http://" not in response.text and "https://" not in response.text
    assert not re.search(r"""(src|href)\s*=\s*["']?(//|[a-z]+:)""", response.text, flags=re.IGNORECASE)
    csp = dict(part.strip().split(" ", 1) for part in response.headers["content-security-policy"].split(";"))
    assert csp["default-src"] == "'none'" and csp["connect-src"] == "'self'"
    assert csp["frame-ancestors"] == "'none'" and csp["base-uri"] == "'none'"
    for directive in ("script-src", "style-src"):  # only the page's own inline blocks, by hash
        assert all(source.startswith("'sha256-") for source in csp[directive].split()), csp[directive]
    assert response.headers["cache-control"] == "no-store"


async def test_the_page_carries_no_data_and_needs_no_token(client, gql):
    await setup(gql)  # agencies and a hotel the page could have shown
    anonymous = await client.get("/dashboard", headers={"Authorization": "Bearer nonsense"})
    admin = await client.get("/dashboard", headers={"Authorization": f"Bearer {token('admin')}"})
    assert anonymous.status_code == admin.status_code == 200 and "SUNTRAVEL" not in admin.text
    assert anonymous.content == admin.content  # the data comes from /graphql, with the token, in the browser
    assert (await client.post("/dashboard")).status_code == 405


# --- in a real browser ---------------------------------------------------------------------------


def chromium(url: str, workdir: Path, *extra: str) -> str:
    """What headless chromium renders of `url` once its script settled (the DOM, with --dump-dom)."""
    result = subprocess.run(
        [CHROMIUM, "--headless=new", "--disable-gpu", "--no-sandbox", "--no-first-run", "--disable-extensions",
         "--disable-background-networking", f"--user-data-dir={workdir / 'profile'}", "--virtual-time-budget=10000",
         *extra, url],
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def month_bounds(today: date) -> tuple[date, date]:
    """The page's default range: this month and the next 5."""
    first = today.replace(day=1)
    end = first
    for _ in range(6):
        end = (end + timedelta(days=32)).replace(day=1)
    return first, end


async def demo(gql) -> dict:
    """A hotel, its contracts, two agencies, confirmed sales, a block releasing this week and a night audit."""
    hotel, ids, agencies = await setup(gql, allotment=12)
    today = date.today()
    data(await gql(UPSERT_CONTRACT, {"input": contract_input(
        hotel["id"], ids["STD"], externalId="C-NEAR", allotment=8, releaseDays=0,
        **{"from": today.isoformat(), "to": (START - timedelta(days=1)).isoformat()})}))
    near = today + timedelta(days=9)  # releaseDays 7: its nights release within the week
    created = data(await gql(CREATE_BLOCK, {"input": {
        "agencyId": agencies["SUNTRAVEL"], "roomTypeId": ids["STD"], "from": near.isoformat(),
        "to": (near + timedelta(days=3)).isoformat(), "rooms": 4, "releaseDays": 7}}))
    block = created["createHardblock"]
    assert block["__typename"] == "Hardblock", block
    from_block = await book(gql, agencies["SUNTRAVEL"], {
        "roomTypeId": ids["STD"], "checkIn": near.isoformat(), "checkOut": (near + timedelta(days=2)).isoformat(),
        "rooms": 1, "hardblockId": block["id"]})
    await confirm(gql, from_block["id"])
    for agency, room_type, offset, nights, rooms in (("SUNTRAVEL", "STD", 0, 3, 2), ("BLUEWAVE", "SUP", 2, 4, 1),
                                                     ("BLUEWAVE", "STD", 10, 2, 3)):
        group = await book(gql, agencies[agency], item(ids[room_type], offset, nights=nights, rooms=rooms))
        await confirm(gql, group["id"])
    await book(gql, agencies["BLUEWAVE"], item(ids["SUP"], 5))  # held: not revenue
    data(await gql(RUN, {"hotelId": hotel["id"], "day": (today - timedelta(days=1)).isoformat()}))
    return hotel, block["reference"]


@needs_chromium
async def test_the_dashboard_draws_the_reports_in_a_real_browser(gql, settings):
    hotel, reference = await demo(gql)
    first, end = month_bounds(date.today())
    expected = data(await gql(REVENUE, {"from": first.isoformat(), "to": end.isoformat(), "by": "AGENCY",
                                        "hotel": hotel["id"]}))["revenueReport"]
    assert {r["key"] for r in expected} == {"SUNTRAVEL", "BLUEWAVE"}
    window = {"from": first.isoformat(), "to": end.isoformat(), "hotel": hotel["id"]}
    pickup = data(await gql(PICKUP, window))["pickupReport"]
    utilisation = data(await gql(UTILISATION, {**window, "by": "MONTH"}))["utilisationReport"]
    with LiveServer(settings) as live, tempfile.TemporaryDirectory() as tmp:
        admin = token("admin")
        url = f"{live.http_url}/dashboard?hotel=LIS#token={quote(admin)}"
        dom = chromium(url, Path(tmp), "--dump-dom")
        screenshot = Path(tmp) / "dashboard.png"
        chromium(url, Path(tmp), f"--screenshot={screenshot}", "--window-size=1400,2000", "--hide-scrollbars")
        assert screenshot.stat().st_size > 10_000
        if os.environ.get("DASHBOARD_SCREENSHOT"):  # to look at it
            shutil.copy(screenshot, os.environ["DASHBOARD_SCREENSHOT"])

    assert 'data-state="ready"' in dom, re.search(r'<div id="status"[^>]*>(.*?)</div>', dom, flags=re.DOTALL)
    # four charts at least (utilisation, pickup, revenue by agency and by month), with bars
    assert dom.count('<svg class="chart"') >= 4
    bars = re.findall(r'<rect class="s\d" data-series="([^"]+)" data-value="([^"]+)"', dom)
    assert len(bars) >= 2 * 6 * 2 + 2

    def total(series: str) -> float:
        return sum(float(value) for name, value in bars if name == series)

    assert total("Blocked") == sum(r["roomNightsBlocked"] for r in pickup) > 0
    assert total("Picked up") == sum(r["roomNightsPickedUp"] for r in pickup) > 0
    assert total("Sold") == sum(r["sold"] for r in utilisation) > 0
    assert total("Allotment") == sum(r["allotment"] for r in utilisation)
    shown = {m["key"]: (m["amount"], m["currency"], m["text"]) for m in re.finditer(
        r'data-test="revenue-agency" data-key="(?P<key>[^"]+)" data-amount="(?P<amount>[^"]+)" '
        r'data-currency="(?P<currency>[^"]+)">(?P<text>[^<]+)<', dom)}
    assert {key: (amount, currency) for key, (amount, currency, _) in shown.items()} == {
        r["key"]: (r["revenue"]["amount"], r["revenue"]["currency"]) for r in expected}
    for key, (amount, currency, text) in shown.items():  # formatted with the currency
        assert text == f"€{float(amount):,.2f}", (key, text)
    # the block releasing this week, and yesterday's clean night audit
    assert f'data-test="releasing" data-reference="{reference}"' in dom
    assert 'data-test="audit" data-discrepancies="0"' in dom
    assert admin not in dom  # the token went to sessionStorage, not into the page


@needs_chromium
async def test_a_bad_or_an_agents_token_gets_a_clear_message(gql, settings):
    await setup(gql)
    with LiveServer(settings) as live, tempfile.TemporaryDirectory() as tmp:
        base = f"{live.http_url}/dashboard"
        signed_out = chromium(base, Path(tmp), "--dump-dom")
        agent = chromium(f"{base}#token={quote(token('agent', 'SUNTRAVEL'))}", Path(tmp), "--dump-dom")
        forged = chromium(f"{base}#token=not-a-token", Path(tmp), "--dump-dom")
    status = {name: re.search(r'<div id="status" role="status" class="error">(.*?)</div>', dom, flags=re.DOTALL)
              for name, dom in (("signed out", signed_out), ("agent", agent), ("forged", forged))}
    assert all(status.values()), status
    assert "paste a staff Firebase ID token" in status["signed out"][1]
    assert "FORBIDDEN" in status["agent"][1] and "staff" in status["agent"][1]
    assert "UNAUTHENTICATED" in status["forged"][1]
    assert 'data-test="revenue-agency"' not in agent
