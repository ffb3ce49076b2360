"""`GET /dashboard`: the staff dashboard, one self-contained page (app/dashboard.html).

The page is served without data and sets no cookie: its script keeps the Firebase ID token in
`sessionStorage` and calls /graphql with it as a Bearer header, so the API's own checks decide
what the caller sees. Everything is inline (CSS, script, charts drawn as SVG), and the
Content-Security-Policy lets through only that exact style and script (by hash) and requests to
this origin.
"""

from __future__ import annotations

import base64
import hashlib
import re
from importlib.resources import files

from starlette.requests import Request
from starlette.responses import HTMLResponse

_PAGE = (files("app") / "dashboard.html").read_text(encoding="utf-8")


def _hashes(tag: str) -> str:
    bodies = re.findall(rf"<{tag}>(.*?)</{tag}>", _PAGE, flags=re.DOTALL)
    assert bodies, f"dashboard.html has no <{tag}>"
    return " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(b.encode()).digest()).decode()}'" for b in bodies)


CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'none'",
    f"script-src {_hashes('script')}",
    f"style-src {_hashes('style')}",
    "connect-src 'self'",
    "img-src 'self' data:",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
])
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


async def dashboard(request: Request) -> HTMLResponse:
    return HTMLResponse(_PAGE, headers=HEADERS)
