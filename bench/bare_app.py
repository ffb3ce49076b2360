"""The comparator of bench.viewer: a bare Starlette app whose POST /graphql reads the request body
and answers a fixed JSON object (the shape of the app's `{ viewer { uid role } }` answer), served by
uvicorn with the options `staysync serve` uses (app/cli.py, cmd_serve).

    .venv/bin/python -m bench.bare_app serve --host 127.0.0.1 --port 8001 [--workers 1]

It takes `staysync serve`'s command line, so bench.common.start_server / running_server start it
like the app (`launcher=BARE_LAUNCHER`); GET /health/ready answers 200 for their readiness wait.
"""

from __future__ import annotations

import argparse
import sys

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

BARE_LAUNCHER = (sys.executable, "-m", "bench.bare_app")
PAYLOAD = {"data": {"viewer": {"uid": "bench", "role": "ADMIN"}}}


async def graphql(request: Request) -> JSONResponse:
    await request.body()
    return JSONResponse(PAYLOAD)


async def ready(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ready"})


def create_app() -> Starlette:
    return Starlette(routes=[Route("/graphql", graphql, methods=["POST"]), Route("/health/ready", ready)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bare_app", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("--no-migrate", action="store_true", help="accepted for start_server; nothing to migrate")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)

    import uvicorn

    from app.server import uvicorn_options
    from app.settings import get_settings

    print(f"bare Starlette endpoint on http://{args.host}:{args.port}/graphql", flush=True)
    # The same uvicorn.run options as cmd_serve in app/cli.py.
    uvicorn.run("bench.bare_app:create_app", factory=True, host=args.host, port=args.port, workers=args.workers,
                log_level="info", proxy_headers=True, **uvicorn_options(get_settings()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
