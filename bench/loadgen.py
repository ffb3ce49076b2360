"""The load generator of the HTTP benchmarks: `wrk` (C, one event loop per thread) driven by the Lua
scripts in bench/wrk/, and the CPU accounting around each of its runs, so a benchmark shows the
client's CPU per request next to the servers' and PostgreSQL's and a reader can see who the
bottleneck is.

wrk is Debian's package (`apt-get install wrk`, version 4.1). ensure_wrk() finds it on PATH; when it
is missing and this process runs as root with apt-get, it installs it; otherwise it exits with a
message saying how to.

One wrk process per run, its threads spread over the servers (thread n sends to server n mod
#servers, through wrk's setup() hook), so two app processes on two ports are driven by one client
and one latency histogram. The per-run configuration (servers, tokens, request shape, outcome
rules) is a Lua file written here; the script writes its per-thread counters and wrk's latency
percentiles to a JSON file in its done() hook.

CPU, per run, in seconds:
- client: the wrk process, from its rusage when it is reaped (os.wait4): exact, whole process;
- each named process tree (the app servers; PostgreSQL): /proc readings before the run and after
  wrk has exited, see common.tree_cpu_seconds. For PostgreSQL the tree is the postmaster of the
  benchmark's database (common.postgres_server_pid) and all its children: the backends of every
  database of that cluster plus its background processes (checkpointer, WAL writer, autovacuum...).
  On a cluster that other work shares, that work counts too.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from bench.common import BENCH_DIR, RESULTS_DIR, proc_stat, cpu_used, per_unit_ms, table, tree_cpu_seconds

WRK_SCRIPTS = BENCH_DIR / "wrk"


def ensure_wrk() -> str:
    """The path of `wrk`; installs Debian's package when it is missing and we may (root, apt-get);
    otherwise exits with a message."""
    found = shutil.which("wrk")
    if found:
        return found
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        print("wrk not found on PATH: installing Debian's package (apt-get install -y wrk)", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "--no-install-recommends", "wrk"]
        if subprocess.run(install, env=env).returncode != 0:
            subprocess.run(["apt-get", "update"], env=env)
            subprocess.run(install, env=env)
        found = shutil.which("wrk")
        if found:
            return found
    raise SystemExit(
        "wrk, the load generator of this benchmark, is not installed and could not be installed here.\n"
        "Install it and run again: `sudo apt-get install wrk` (Debian/Ubuntu), `brew install wrk` (macOS), "
        "or build https://github.com/wg/wrk and put it on PATH.")


def lua_literal(value: Any) -> str:
    """`value` (None, bool, number, str, list/tuple, str-keyed mapping) as a Lua expression."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + "".join(chr(b) if 32 <= b < 127 and b not in (34, 92) else f"\\{b:03d}"
                             for b in value.encode()) + '"'
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"[{lua_literal(str(k))}] = {lua_literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "{" + ", ".join(lua_literal(v) for v in value) + "}"
    raise TypeError(f"no Lua literal for {type(value).__name__}")


def run_wrk(script: str, bases: Sequence[str], config: Mapping[str, Any], *, name: str, connections: int,
            threads: int, seconds: int, timeout_s: int = 30, quota: int = 0,
            cpu_roots: Mapping[str, int | None] | None = None) -> dict[str, Any]:
    """One wrk run of bench/wrk/<script>.lua against the servers at `bases` (threads spread over
    them). quota > 0: a burst, each thread sends exactly `quota` requests (`connections` / `threads`
    of them at once when quota equals that) and wrk is stopped as soon as all threads are done,
    `seconds` being only the limit; quota 0: back to back for `seconds`. `config` is what the
    script needs beyond the servers, path, quota, output and seed/nonce. Returns the counters, the
    latency percentiles (ms) and the CPU seconds of the client and of each of `cpu_roots`."""
    binary = ensure_wrk()
    cpu_roots = cpu_roots or {}
    if connections % threads or threads % len(bases):
        raise ValueError("connections must be a multiple of threads, and threads of the servers")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"{name}.wrk-out.json"
    config_path = RESULTS_DIR / f"{name}.wrk-config.lua"
    out.unlink(missing_ok=True)
    servers = []
    for base in bases:
        parts = urlsplit(base)
        servers.append({"host": parts.hostname, "port": parts.port})
    full = {"servers": servers, "path": "/graphql", "quota": quota, "out": str(out), "seed": 20260501,
            "nonce": uuid.uuid4().hex[:12], **config}
    config_path.write_text("return " + lua_literal(full) + "\n")
    command = [binary, "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--timeout", f"{timeout_s}s",
               "-s", str(WRK_SCRIPTS / f"{script}.lua"), bases[0]]
    before = tree_cpu_seconds(cpu_roots)
    with (RESULTS_DIR / f"{name}.wrk.log").open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, "BENCH_WRK_CONFIG": str(config_path)})
        t0 = time.perf_counter()
        if quota:
            _interrupt_when_threads_end(process.pid, seconds + 30)
        # Reaped here rather than by Popen, for its rusage: the client's CPU, exactly.
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
    after = tree_cpu_seconds(cpu_roots)
    if process.returncode != 0 or not out.exists():
        raise RuntimeError(f"wrk failed (exit {process.returncode}); see {RESULTS_DIR / f'{name}.wrk.log'}")
    raw = json.loads(out.read_text(errors="replace"))
    per_thread = raw["threads"]
    outcomes: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    for thread in per_thread:
        outcomes.update(thread["counts"] or {})
        statuses.update(thread["statuses"] or {})
    latency = raw["latency_us"]
    summary = raw["summary"]
    return {
        "sent": sum(t["sent"] for t in per_thread),
        "responses": sum(t["responses"] for t in per_thread),
        "outcomes": dict(outcomes),
        "statuses": dict(statuses),
        "socket_errors": {k: v for k, v in summary["errors"].items() if k != "status"},
        "samples": [s for t in per_thread for s in (t["samples"] or [])][:5],
        "per_thread": [{k: t[k] for k in ("id", "host", "sent", "responses")} for t in per_thread],
        "seconds": round(summary["duration"] / 1e6, 3),
        "wall_s": round(wall, 3),
        "latency_ms": {k: round(latency[k] / 1000, 2) for k in ("p50", "p90", "p99", "p999", "max", "mean")},
        "cpu_s": {"client": round(usage.ru_utime + usage.ru_stime, 3), **cpu_used(before, after)},
        "connections": connections,
        "threads": threads,
        "quota": quota,
    }


def _interrupt_when_threads_end(pid: int, limit_s: float) -> None:
    """wrk's main thread sleeps for all of -d even when its threads have stopped; SIGINT ends the
    sleep. It is sent once the worker threads have come and gone (only the main thread left, so the
    signal cannot land on a worker), then again every 50 ms until wrk exits."""
    deadline = time.monotonic() + limit_s
    seen_workers = False
    while time.monotonic() < deadline:
        fields = proc_stat(pid)
        if fields is None or fields[0] == "Z":
            return
        running = int(fields[17])  # num_threads
        if running > 1:
            seen_workers = True
        elif seen_workers:
            os.kill(pid, signal.SIGINT)
            time.sleep(0.05)
            continue
        time.sleep(0.01)


def sum_cpu(cpu_s: Mapping[str, float | None], prefix: str) -> float | None:
    """The CPU seconds of all the trees whose name starts with `prefix` (None if one is missing)."""
    values = [v for k, v in cpu_s.items() if k.startswith(prefix)]
    if not values or any(v is None for v in values):
        return None
    return round(sum(values), 3)  # type: ignore[arg-type]


def cpu_per(run: Mapping[str, Any], units: int) -> dict[str, float | None]:
    """CPU ms per unit (request, booking) of the client, the servers (all trees named server*;
    None when there are none) and PostgreSQL, from a run's `cpu_s`."""
    cpu = run["cpu_s"]
    return {"client": per_unit_ms(cpu["client"], units), "server": per_unit_ms(sum_cpu(cpu, "server"), units),
            "postgres": per_unit_ms(cpu.get("postgres"), units)}


def cpu_table(rows: Sequence[tuple[str, Mapping[str, float | None]]], unit: str) -> str:
    """A table of cpu_per() results, one row per case."""
    return table([f"CPU ms per {unit}", "client", "server", "PostgreSQL"],
                 [[label, *(("-" if per[k] is None else f"{per[k]:.3f}") for k in ("client", "server", "postgres"))]
                  for label, per in rows])
