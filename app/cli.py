"""`staysync serve | migrate | seed | token | supplier-sim` — what `make run` uses."""

from __future__ import annotations

import argparse
import contextlib
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from pydantic import ValidationError

from app.settings import Settings, get_settings

log = logging.getLogger("staysync")


def database_url(settings: Settings) -> str:
    """DATABASE_URL, or an embedded PostgreSQL in DATA_DIR when it is unset.

    The URL is exported so uvicorn's worker processes (and Alembic) use the same database.
    """
    if settings.database_url:
        return settings.database_url
    from db.embedded import start_embedded

    url = start_embedded(settings.data_dir)
    os.environ["DATABASE_URL"] = url
    settings.database_url = url
    log.info("DATABASE_URL unset: using the embedded PostgreSQL in %s", settings.data_dir / "pg")
    return url


def cmd_migrate(args: argparse.Namespace) -> int:
    from db import migrate

    settings = get_settings()
    migrate.upgrade(database_url(settings), args.revision)
    return 0


def cmd_seed(args: argparse.Namespace) -> int:
    from app.seed import seed_demo

    settings = get_settings()
    created = asyncio.run(seed_demo(database_url(settings), force=args.force))
    print("demo data seeded" if created else "database already has hotels: demo data not seeded (use --force)")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.seed import seed_demo
    from app.server import uvicorn_options
    from db import migrate

    settings = get_settings()
    url = database_url(settings)
    if not args.no_migrate:
        migrate.upgrade(url)
    if settings.should_seed_demo and not args.no_migrate:
        asyncio.run(seed_demo(url))
    settings.export_firebase_env()
    host = args.host or settings.host
    port = args.port or settings.port
    if not settings.stripe_api_key and not settings.production:
        _start_localstripe(settings, port)
    if settings.demo_supplier_sim if settings.demo_supplier_sim is not None else (
            settings.should_seed_demo and not settings.production):
        _start_demo_supplier_sim(settings)
    workers = args.workers or settings.web_concurrency
    print(f"StaySync on http://{host}:{port}/graphql ({workers} worker{'s' * (workers > 1)})", flush=True)
    # uvicorn re-raises SIGTERM after its graceful shutdown; exiting through SystemExit (instead
    # of the default handler's abrupt kill) lets atexit stop the embedded PostgreSQL.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        proxy_headers=True,
        **uvicorn_options(settings),
    )
    return 0


def _start_localstripe(settings: Settings, port: int) -> None:
    """Development without STRIPE_API_KEY: localstripe (a fake Stripe) on loopback as a child
    process, this app's webhook registered with it, and the Stripe settings exported for the workers."""
    import atexit

    from app import localstripe

    child, base = localstripe.start(settings.localstripe_port)
    atexit.register(child.terminate)
    localstripe.register_webhook(base, f"http://127.0.0.1:{port}/webhooks/stripe", localstripe.DEV_WEBHOOK_SECRET)
    values = {"STRIPE_API_KEY": localstripe.DEV_SECRET_KEY, "STRIPE_API_BASE": base,
              "STRIPE_WEBHOOK_SECRET": localstripe.DEV_WEBHOOK_SECRET}
    os.environ.update(values)
    settings.stripe_api_key, settings.stripe_api_base, settings.stripe_webhook_secret = values.values()
    print(f"Card payments: localstripe (a fake Stripe) on {base}, secret key {localstripe.DEV_SECRET_KEY}, "
          f"publishable key {localstripe.DEV_PUBLISHABLE_KEY}", flush=True)


def _start_demo_supplier_sim(settings: Settings) -> None:
    """The demo's supplier feed, as a child process that ends with this one: the simulator on
    DEMO_SUPPLIER_URL over `.data/supplier-sim.json` (a copy of the demo data, there to be edited)."""
    import atexit
    import shutil
    import subprocess
    from urllib.parse import urlsplit

    from app.seed import DEMO_SUPPLIER_KEY
    from app.supplier_sim import DEMO_DATA

    data = settings.data_dir / "supplier-sim.json"
    if not data.exists():
        data.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(DEMO_DATA, data)
    url = urlsplit(settings.demo_supplier_url)
    child = subprocess.Popen([sys.executable, "-m", "app.cli", "supplier-sim", "--host", url.hostname or "127.0.0.1",
                              "--port", str(url.port or 3101), "--data", str(data), "--api-key", DEMO_SUPPLIER_KEY])
    atexit.register(child.terminate)
    print(f"Demo supplier feed: {settings.demo_supplier_url} over {data} (edit it, then syncSupplier)", flush=True)


def cmd_token(args: argparse.Namespace) -> int:
    from app.auth import make_emulator_token

    if args.role == "agent" and not args.agency:
        # make_emulator_token would say "agency=...": name the option a CLI user types
        print("staysync token: --role agent needs --agency CODE (the agency the agent acts for)", file=sys.stderr)
        return 2
    settings = get_settings()
    try:
        token = make_emulator_token(
            role=args.role,
            agency=args.agency.upper() if args.agency else None,
            uid=args.uid,
            project_id=settings.firebase_project_id,
            lifetime_s=args.hours * 3600,
        )
    except ValueError as error:
        print(f"staysync token: {error}", file=sys.stderr)
        return 2
    print(token)
    return 0


def cmd_supplier_sim(args: argparse.Namespace) -> int:
    import uvicorn

    from app.supplier_sim import DEMO_DATA, Switches, create_app

    data = args.data or DEMO_DATA
    try:
        switches = Switches(flicker=args.flicker, unit_drift=args.unit_drift, fail_rate=args.fail_rate,
                            slow_ms=args.slow_ms, page_size=args.page_size)
        app = create_app(data, api_key=args.api_key, switches=switches, seed=args.seed)
    except ValidationError as error:
        problems = "; ".join(f"--{'-'.join(map(str, e['loc'])).replace('_', '-')}: {e['msg']}" for e in error.errors())
        print(f"staysync supplier-sim: {problems}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as error:
        print(f"staysync supplier-sim: cannot serve {data}: {error}", file=sys.stderr)
        return 2
    print(f"Supplier feed simulator on http://{args.host}:{args.port} (/hotels, /contracts; "
          f"switches at /_sim/switches), serving {data}", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    """One MANUAL run of a supplier, printed as it ends (for cron, or a terminal)."""
    settings = get_settings()
    url = database_url(settings)

    async def run() -> int:
        from sqlalchemy import select

        from app.services.changes import OutboxRelay
        from app.services.context import Services, raw_pool
        from app.services.errors import SyncAlreadyRunning
        from app.services.supply.sources import sync_now
        from db import models
        from db.engine import create_engine, session_factory

        engine = create_engine(url, pool_size=2)
        sessions = session_factory(engine)

        async def nobody_listens(channel: str, message: str) -> None:
            """The server's relay publishes the run's outbox rows."""

        services = Services(settings.model_copy(update={"database_url": url}), sessions,
                            OutboxRelay(sessions, nobody_listens), raw_pool(settings.model_copy(update={"database_url": url})))
        try:
            async with sessions() as session:
                supplier = (await session.execute(select(models.Supplier).where(
                    models.Supplier.code == args.supplier.upper()))).scalar_one_or_none()
            if supplier is None:
                print(f"staysync sync: no supplier {args.supplier}", file=sys.stderr)
                return 2
            try:
                run = await sync_now(services, supplier.id, "MANUAL")
            except SyncAlreadyRunning as busy:
                print(f"staysync sync: {busy.message}", file=sys.stderr)
                return 3
            print(f"run {run.id}: {run.status} {run.stats}" + (f" ({run.error})" if run.error else ""))
            for issue in run.issues:
                print(f"  {issue['kind']} {issue['external_id'] or '-'}: {issue['message']}")
            return 0 if run.status in ("SUCCEEDED", "PARTIAL") else 1
        finally:
            await services.raw.close()
            await engine.dispose()

    return asyncio.run(run())


def cmd_notify(args: argparse.Namespace) -> int:
    """The webhook and email dispatchers alone, until interrupted: for deployments that keep them
    out of the web workers (NOTIFY_IN_WORKERS=0). Any number may run, anywhere."""
    settings = get_settings()
    url = database_url(settings)

    async def run() -> None:
        from app.services.changes import OutboxRelay
        from app.services.context import Services, raw_pool
        from app.services.jobs import run_mail_dispatcher, run_webhook_dispatcher
        from db.engine import create_engine, session_factory

        configured = settings.model_copy(update={"database_url": url})
        engine = create_engine(url, pool_size=4)
        sessions = session_factory(engine)

        async def nobody_listens(channel: str, message: str) -> None:
            """Dispatchers publish nothing to subscribers."""

        services = Services(configured, sessions, OutboxRelay(sessions, nobody_listens), raw_pool(configured))
        try:
            await asyncio.gather(*(run_webhook_dispatcher(services) for _ in range(args.dispatchers)),
                                 run_mail_dispatcher(services))
        finally:
            await services.raw.close()
            await engine.dispose()

    print(f"staysync notify: {args.dispatchers} webhook dispatcher(s) and the email dispatcher running", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
    return 0


def _positive_int(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {value}")
    return number


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="staysync",
        description="StaySync: hotel allotments sold to travel agencies, served as a GraphQL API.",
        epilog="Configuration comes from environment variables (see the README's table). "
        "With DATABASE_URL unset, an embedded PostgreSQL is started in .data/.",
    )
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve", help="migrate, seed demo data (SEED_DEMO=1) and serve /graphql",
        description="Apply migrations, seed demo data on an empty database, and serve the API.",
    )
    serve.add_argument("--host", help="interface to bind (default: HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: PORT or 3001)")
    serve.add_argument("--workers", type=int, help="worker processes (default: WEB_CONCURRENCY or 1)")
    serve.add_argument("--no-migrate", action="store_true", help="serve without migrating or seeding")
    serve.set_defaults(run=cmd_serve)

    migrate = commands.add_parser(
        "migrate", help="apply database migrations (alembic upgrade)",
        description="Upgrade the database to a migration revision (the latest by default).",
    )
    migrate.add_argument("revision", nargs="?", default="head", help="target revision (default: head)")
    migrate.set_defaults(run=cmd_migrate)

    seed = commands.add_parser(
        "seed", help="load demo agencies, hotels, contracts, hardblocks and bookings",
        description="Load the demo data (3 agencies, 2 hotels, a year of contracts, hardblocks and booking "
        "groups) into a database that has no hotels yet.",
    )
    seed.add_argument("--force", action="store_true", help="seed even if hotels exist: add only what is missing")
    seed.set_defaults(run=cmd_seed)

    token = commands.add_parser(
        "token", help="print a Firebase emulator ID token for local use",
        description="Print an unsigned Firebase Auth emulator ID token. It is accepted only while "
        "FIREBASE_AUTH_EMULATOR_HOST is set (local runs and tests), never in production.",
    )
    token.add_argument("--role", required=True, choices=["admin", "operator", "agent"], help="StaySync role claim")
    token.add_argument("--agency", metavar="CODE", help="agency code claim (required for agents)")
    token.add_argument("--uid", help="user id (default: dev-<role> or dev-agent-<agency>)")
    token.add_argument("--hours", type=_positive_int, default=12, help="validity in hours (default: 12)")
    token.set_defaults(run=cmd_token)

    sync = commands.add_parser(
        "sync", help="run one supplier sync now and print its outcome",
        description="Run a supplier's sync (its HTTP feed, or its drop folder's new files) to its end, as "
        "syncSupplier does. Exit status 0 when it SUCCEEDED or was PARTIAL, 1 when it FAILED, 3 when a run of "
        "the supplier is already under way.",
    )
    sync.add_argument("supplier", metavar="CODE", help="the supplier's code")
    sync.set_defaults(run=cmd_sync)

    notify = commands.add_parser(
        "notify", help="run the webhook and email dispatchers (outside the web workers)",
        description="Send partner webhooks and emails until interrupted, sharing the work with any other "
        "dispatcher (SKIP LOCKED and leases). For NOTIFY_IN_WORKERS=0 deployments.",
    )
    notify.add_argument("--dispatchers", type=_positive_int, default=2, metavar="N",
                        help="webhook dispatchers in this process (default: 2)")
    notify.set_defaults(run=cmd_notify)

    sim = commands.add_parser(
        "supplier-sim", help="serve a fake supplier feed (/hotels, /contracts) for local syncs",
        description="Serve a supplier's paginated feed from a JSON file {\"hotels\": [...], \"contracts\": [...]}, "
        "read again whenever it changes, with switches for the supplier's bad habits. The switches can also "
        "be read and changed while it runs: GET/POST /_sim/switches with JSON.",
    )
    sim.add_argument("--host", default="127.0.0.1", help="interface to bind (default: 127.0.0.1)")
    sim.add_argument("--port", type=int, default=3101, help="port (default: 3101)")
    sim.add_argument("--data", type=Path, metavar="FILE",
                     help="the feed's records (default: the demo data, app/supplier_demo.json)")
    sim.add_argument("--api-key", metavar="KEY", help="require Authorization: Bearer KEY (default: no key)")
    sim.add_argument("--flicker", action="store_true",
                     help="every second read of /contracts shows one room fewer on every other contract")
    sim.add_argument("--unit-drift", action="store_true",
                     help="some contracts come as ROOM_NIGHTS totals, some as a plain nights x rooms integer")
    sim.add_argument("--fail-rate", type=float, default=0.0, metavar="SHARE",
                     help="share of feed requests answered with 500, 0 to 1 (default: 0)")
    sim.add_argument("--slow-ms", type=int, default=0, metavar="MS", help="wait before each feed answer (default: 0)")
    sim.add_argument("--page-size", type=int, default=50, metavar="N", help="records per page (default: 50)")
    sim.add_argument("--seed", type=int, help="seed for the failures' randomness (default: unseeded)")
    sim.set_defaults(run=cmd_supplier_sim)
    return root


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # one line per plugin at start
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except ValidationError as error:  # bad configuration: say which variable, not a traceback
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])).upper() or 'settings'}: {e['msg']}" for e in error.errors())
        print(f"staysync: invalid configuration: {problems}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
