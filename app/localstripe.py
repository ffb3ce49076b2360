"""localstripe, the stateful fake Stripe server, on loopback: what `staysync serve` starts in
development when STRIPE_API_KEY is unset, and what the tests pay against.

Its own command binds every interface and keeps its state in a file shared by every instance
(/tmp/localstripe.pickle); `python -m app.localstripe` serves its app on 127.0.0.1 only, with
the state in memory.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time

import httpx

# Any key starting sk_ is accepted; a fixed one lets a developer's curl use it too.
DEV_SECRET_KEY = "sk_test_staysync_localstripe"
DEV_PUBLISHABLE_KEY = "pk_test_staysync_localstripe"
DEV_WEBHOOK_SECRET = "whsec_staysync_localstripe"
WEBHOOK_ID = "staysync"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(port: int, *, timeout_s: float = 15) -> tuple[subprocess.Popen, str]:
    """localstripe on 127.0.0.1:`port` as a child process, once it answers; and its base URL."""
    child = subprocess.Popen([sys.executable, "-m", "app.localstripe", "--port", str(port)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            # Its mock Stripe.js needs no key: a 200 says the server is up.
            if httpx.get(f"{base}/js.stripe.com/v3/", timeout=1, trust_env=False).status_code == 200:
                return child, base
        except httpx.TransportError:
            pass
        if child.poll() is not None or time.monotonic() > deadline:
            child.kill()
            raise RuntimeError(f"localstripe did not start on {base} (is the port taken?)")
        time.sleep(0.1)


def register_webhook(base: str, url: str, secret: str) -> None:
    """Have localstripe send its events to `url`, signed with `secret` (its /_config API)."""
    response = httpx.post(f"{base}/_config/webhooks/{WEBHOOK_ID}", data={"url": url, "secret": secret},
                          timeout=5, trust_env=False)
    response.raise_for_status()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m app.localstripe", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8420)
    args = parser.parse_args()
    from aiohttp import web
    from localstripe import resources
    from localstripe.server import app

    # State in memory only (its default pickles every write to a file shared machine-wide).
    resources.Store.try_load_from_disk = lambda self: None
    resources.Store.dump_to_disk = lambda self: None
    web.run_app(app, host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
