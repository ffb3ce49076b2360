"""Shared helpers: timing, percentiles, targets, tables and the JSON results file; for the benches
that query the app over HTTP, the throwaway database, the server subprocess, the interleaved
request timing with its json.dumps comparator, the app executed in-process and its profile."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import httpx
from sqlalchemy.engine import make_url

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"

EMULATOR_HOST = "127.0.0.1:9099"
PROJECT_ID = "staysync-bench"
SEPARATORS = (",", ":")  # what Strawberry's encode_json uses for the response body


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear interpolation between closest ranks."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100
    lo = int(rank)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)


def summarize(samples_ms: Sequence[float]) -> dict[str, Any]:
    """p50/p95/min/max/mean of samples in milliseconds (rounded for reading, raw samples kept)."""
    return {
        "n": len(samples_ms),
        "p50_ms": round(percentile(samples_ms, 50), 3),
        "p95_ms": round(percentile(samples_ms, 95), 3),
        "min_ms": round(min(samples_ms), 3),
        "max_ms": round(max(samples_ms), 3),
        "mean_ms": round(sum(samples_ms) / len(samples_ms), 3),
        "samples_ms": [round(x, 3) for x in samples_ms],
    }


def time_ms(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Run fn once; (elapsed milliseconds, its result)."""
    t0 = time.perf_counter_ns()
    result = fn()
    return (time.perf_counter_ns() - t0) / 1e6, result


def repeat_ms(fn: Callable[[], Any], runs: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        fn()
    return [time_ms(fn)[0] for _ in range(runs)]


def target(name: str, value: float, limit: float, unit: str = "", *, op: str = "<=") -> dict[str, Any]:
    """A target check: `value op limit`."""
    if op == "<=":
        passed = value <= limit
    elif op == ">=":
        passed = value >= limit
    else:
        raise ValueError(op)
    return {"name": name, "value": round(value, 3), "op": op, "limit": limit, "unit": unit, "pass": passed}


def machine() -> dict[str, Any]:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = bool(subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=PROJECT_ROOT,
            capture_output=True, text=True, check=True,
        ).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = None, None
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "git_commit": commit,
        "git_dirty": dirty,
        "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def write_results(name: str, payload: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps({"benchmark": name, "machine": machine(), **payload}, indent=2, default=str) + "\n")
    return path


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers], *[[_fmt(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        lines.append("  ".join(v.rjust(w) if n and i else v.ljust(w) for i, (v, w) in enumerate(zip(row, widths))))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def targets_table(targets: Sequence[dict[str, Any]]) -> str:
    return table(
        ["target", "value", "limit", "result"],
        [[t["name"], f"{t['value']:.2f}{t['unit']}", f"{t['op']} {t['limit']}{t['unit']}",
          "PASS" if t["pass"] else "FAIL"] for t in targets],
    )


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


# --- CPU used by the processes of a run (Linux /proc) --------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (index 0 = state, 1 = ppid,
    11/12 = utime/stime, 13/14 = cutime/cstime), or None when the process is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """user + system CPU seconds of a process so far (Linux /proc)."""
    fields = proc_stat(pid)
    if fields is None:
        raise ProcessLookupError(pid)
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def tree_cpu_seconds(roots: Mapping[str, int | None]) -> dict[str, float | None]:
    """For each named root pid: user + system CPU seconds of the process and all its live
    descendants, plus what their exited and reaped children used (cutime + cstime), so a worker
    or a PostgreSQL backend that ends between two readings still counts (its time has moved to
    its parent). None for a root that is not there. One scan of /proc for all the roots."""
    children: dict[int, list[int]] = {}
    used: dict[int, float] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = proc_stat(int(entry.name))
        if fields is None:
            continue
        pid = int(entry.name)
        children.setdefault(int(fields[1]), []).append(pid)
        used[pid] = sum(int(fields[i]) for i in (11, 12, 13, 14)) / CLOCK_TICKS
    out: dict[str, float | None] = {}
    for name, root in roots.items():
        if root is None or root not in used:
            out[name] = None
            continue
        total, stack = 0.0, [root]
        while stack:
            pid = stack.pop()
            total += used.get(pid, 0.0)
            stack.extend(children.get(pid, ()))
        out[name] = total
    return out


def cpu_used(before: Mapping[str, float | None], after: Mapping[str, float | None]) -> dict[str, float | None]:
    """CPU seconds per name between two tree_cpu_seconds() readings (None when either is missing)."""
    return {name: (None if before.get(name) is None or after.get(name) is None
                   else round(after[name] - before[name], 3))  # type: ignore[operator]
            for name in after}


def per_unit_ms(seconds: float | None, units: int) -> float | None:
    """CPU milliseconds per request (or booking); None when not measured or nothing was done."""
    if seconds is None or not units:
        return None
    return round(seconds * 1000 / units, 3)


def postgres_server_pid(url: str) -> int | None:
    """The pid of the PostgreSQL server (postmaster) behind `url` when it runs on this machine
    and its processes are visible here, else None. Found as the parent of this connection's
    backend, checked to be a postgres process serving this database (so another cluster on the
    machine, or a pid of another namespace, is never taken for it)."""
    import asyncpg

    from db.engine import plain_url

    database = make_url(url).database or ""

    async def postmaster() -> int | None:
        connection = await asyncpg.connect(plain_url(url))
        try:  # read /proc while the backend is alive
            pid = await connection.fetchval("SELECT pg_backend_pid()")
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                return None
            fields = proc_stat(pid)
            if fields is None or "postgres" not in cmdline or database not in cmdline:
                return None
            return int(fields[1])
        finally:
            await connection.close()

    return asyncio.run(postmaster())


# --- a throwaway database and the app server over HTTP -------------------------------------------

SeedResult = TypeVar("SeedResult")


def http_bench_arguments(argv: list[str] | None, module: str, doc: str, runs: int, profiled: str) -> argparse.Namespace:
    """The options of a bench that queries the app over HTTP; `profiled` names what --profile profiles."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=doc.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=runs, help=f"timed requests per case (default {runs})")
    parser.add_argument("--warmup", type=int, default=5, help="warm-up requests per case (default 5)")
    parser.add_argument("--seed", type=int, default=20260501)
    parser.add_argument("--profile", action="store_true", help=f"pyinstrument profile of {profiled}")
    parser.add_argument("--keep-db", action="store_true", help="do not drop the throwaway database")
    return parser.parse_args(argv)


def run_seed(seeding: Awaitable[SeedResult]) -> SeedResult:
    """The result of a bench's seed coroutine (whose `.counts` are printed with the time it took)."""
    t0 = time.perf_counter()
    seeded = asyncio.run(seeding)
    print(f"seeded {seeded.counts} in {time.perf_counter() - t0:.1f} s", flush=True)  # type: ignore[attr-defined]
    return seeded



def server_url() -> tuple[str, str]:
    for name in ("BENCH_DATABASE_URL", "TEST_DATABASE_URL"):
        if os.environ.get(name):
            return os.environ[name], name
    from db.embedded import start_embedded

    return start_embedded(PROJECT_ROOT / ".data" / "bench", database="postgres"), "embedded (.data/bench)"


@contextmanager
def scratch_database(keep: bool = False) -> Iterator[tuple[str, str]]:
    """A migrated throwaway database: (its URL, where its PostgreSQL came from); dropped on leaving
    unless `keep`."""
    from db import migrate
    from db.scratch import create_scratch_database, drop_scratch_database

    server, source = server_url()
    url = asyncio.run(create_scratch_database(server, "staysync_bench"))
    print(f"PostgreSQL: {source}; throwaway database {make_url(url).database}", flush=True)
    try:
        migrate.upgrade(url)
        yield url, source
    finally:
        if not keep:
            asyncio.run(drop_scratch_database(url))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# `python -m app.cli` run from the project root serves this checkout's code, whatever tree the
# virtualenv's editable install (and so its `staysync` script) points at.
APP_LAUNCHER = (sys.executable, "-m", "app.cli")


def start_server(url: str, port: int, log_path: Path, launcher: Sequence[str] = APP_LAUNCHER,
                 extra_env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    """`<launcher> serve --no-migrate` on 127.0.0.1:`port`, one worker, on the database at `url`."""
    env = {**os.environ, "DATABASE_URL": url, "SEED_DEMO": "0", "APP_ENV": "development",
           "FIREBASE_AUTH_EMULATOR_HOST": EMULATOR_HOST, "FIREBASE_PROJECT_ID": PROJECT_ID,
           "BROADCAST_URL": "memory://", "WEB_CONCURRENCY": "1", **(extra_env or {})}
    command = [*launcher, "serve", "--no-migrate", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    log = log_path.open("wb")
    return subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_ready(base: str, process: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}; see its log")
        try:
            if httpx.get(f"{base}/health/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the server did not become ready in time")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def running_server(url: str, log_path: Path, launcher: Sequence[str] = APP_LAUNCHER,
                   extra_env: Mapping[str, str] | None = None) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A ready server (see start_server): (its base URL, its process); stopped on leaving. A
    transport error inside, when the server has died, is reported as its death."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = start_server(url, port, log_path, launcher, extra_env)
    try:
        wait_ready(base, process)
        yield base, process
    except httpx.TransportError:
        if process.poll() is not None:
            raise RuntimeError(f"the server (pid {process.pid}) exited with {process.returncode} during the "
                               f"measurement; see {log_path.relative_to(PROJECT_ROOT)}") from None
        raise
    finally:
        stop_server(process)


def admin_token() -> str:
    from app.auth import make_emulator_token

    return make_emulator_token(role="admin", project_id=PROJECT_ID, lifetime_s=6 * 3600)


def time_graphql_cases(
    client: httpx.Client,
    cases: Sequence[str],
    body: Callable[[str], dict[str, Any]],
    runs: int,
    warmup: int,
    rnd: random.Random,
    check: Callable[[str, bytes, dict[str, Any]], None],
    after_round: Callable[[bool], None] | None = None,
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """(request ms, json.dumps ms) per case over `runs` rounds after `warmup` ones, the cases
    shuffled each round so drift hits them alike. A request is timed until its body is fully read;
    the comparator is `json.dumps` (with the server's separators) of that very response's decoded
    JSON, timed right after it. `check(case, body, payload)` sees each warm-up response;
    `after_round(timed)` runs after each round."""
    request_ms: dict[str, list[float]] = {case: [] for case in cases}
    dumps_ms: dict[str, list[float]] = {case: [] for case in cases}
    for round_no in range(warmup + runs):
        order = list(cases)
        rnd.shuffle(order)
        for case in order:
            request = body(case)
            t0 = time.perf_counter_ns()
            response = client.post("/graphql", json=request)
            content = response.content
            elapsed = (time.perf_counter_ns() - t0) / 1e6
            response.raise_for_status()
            payload = json.loads(content)
            t0 = time.perf_counter_ns()
            json.dumps(payload, separators=SEPARATORS)
            dumped = (time.perf_counter_ns() - t0) / 1e6
            if round_no < warmup:
                check(case, content, payload)
                continue
            request_ms[case].append(elapsed)
            dumps_ms[case].append(dumped)
        if after_round is not None:
            after_round(round_no >= warmup)
    return request_ms, dumps_ms


def against_json_dumps(request_ms: Sequence[float], dumps_ms: Sequence[float]) -> dict[str, Any]:
    """A case's request and json.dumps summaries, and their ratio at p50."""
    return {"request": summarize(request_ms), "json_dumps": summarize(dumps_ms),
            "ratio_p50": round(percentile(request_ms, 50) / percentile(dumps_ms, 50), 2)}


# --- the app in this process: no HTTP, no auth ---------------------------------------------------


async def _discard(channel: str, message: str) -> None:
    """Read-only benchmarks publish nothing; a write's messages would go nowhere."""


class InProcessApp:
    """The app's GraphQL schema executed in this process as an admin, on an engine of its own."""

    def __init__(self, url: str) -> None:
        from app.api.schema import build_schema
        from app.auth import Principal, Role
        from app.services.context import raw_pool
        from app.settings import Settings
        from db.engine import create_engine, session_factory

        self.settings = Settings(app_env="development", database_url=url, seed_demo=False,
                                 firebase_project_id=PROJECT_ID, firebase_auth_emulator_host=EMULATOR_HOST)
        self.schema = build_schema(self.settings)
        self.engine = create_engine(url, pool_size=2)
        self.sessions = session_factory(self.engine)
        self.raw = raw_pool(self.settings)
        self.principal = Principal(uid="bench", role=Role.ADMIN, agency_code=None)

    def context(self) -> Any:
        from app.api.context import Context
        from app.services.changes import OutboxRelay
        from app.services.context import Services

        services = Services(self.settings, self.sessions, OutboxRelay(self.sessions, _discard), self.raw)
        ctx = Context(services=services, verifier=None, broadcast=None)  # type: ignore[arg-type]
        ctx.principal = self.principal
        return ctx

    async def execute(self, query: str, variables: dict[str, Any]) -> Any:
        """The execution result; raises on GraphQL errors."""
        result = await self.schema.execute(query, variable_values=variables, context_value=self.context())
        if result.errors:
            raise RuntimeError(result.errors)
        return result

    async def dispose(self) -> None:
        await self.raw.close()
        await self.engine.dispose()


async def time_async(fn: Callable[[], Awaitable[Any]], runs: int) -> tuple[list[float], Any]:
    """Milliseconds of `runs` awaits of fn() after two untimed ones, and the last result."""
    out, value = [], None
    for _ in range(2):
        value = await fn()
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        value = await fn()
        out.append((time.perf_counter_ns() - t0) / 1e6)
    return out, value


async def profile_self_time(run: Callable[[], Awaitable[Any]], name: str, html: bool = False,
                            n: int = 5) -> dict[str, Any]:
    """A pyinstrument profile of `n` awaits of run(): self time shares by package and by function;
    the full tree in results/<name>.profile.txt (and .html)."""
    try:
        from pyinstrument import Profiler
    except ImportError:
        return {"error": "pyinstrument is not installed (.venv/bin/pip install pyinstrument)"}
    profiler = Profiler(interval=0.001, async_mode="disabled")
    profiler.start()
    for _ in range(n):
        await run()
    session = profiler.stop()
    text_path = RESULTS_DIR / f"{name}.profile.txt"
    text_path.write_text(profiler.output_text(unicode=False, color=False, show_all=False))
    html_path = RESULTS_DIR / f"{name}.profile.html"
    if html:
        html_path.write_text(profiler.output_html())

    by_package: dict[str, float] = {}
    by_function: dict[str, float] = {}

    def walk(frame: Any, parent: tuple[str, str]) -> None:
        # Self time shows up as synthetic "[self]" children without a file: their parent's.
        if frame.file_path:
            key = (_package(frame.file_path), f"{frame.function}  {frame.file_path_short}:{frame.line_no}")
        else:
            key = parent
        own = frame.time - sum(child.time for child in frame.children)
        by_package[key[0]] = by_package.get(key[0], 0.0) + own
        by_function[key[1]] = by_function.get(key[1], 0.0) + own
        for child in frame.children:
            walk(child, key)

    root = session.root_frame()
    if root is not None:
        walk(root, ("(unknown)", "(unknown)"))
    total = sum(by_package.values()) or 1.0
    return {
        "runs": n,
        "self_time_share_by_package": {k: round(v / total, 3) for k, v in
                                       sorted(by_package.items(), key=lambda kv: -kv[1])},
        "top_functions_by_self_time": {k: round(v / total, 3) for k, v in
                                       sorted(by_function.items(), key=lambda kv: -kv[1])[:25]},
        "text": str(text_path.relative_to(PROJECT_ROOT)),
        **({"html": str(html_path.relative_to(PROJECT_ROOT))} if html else {}),
    }


def print_profile(profile: dict[str, Any], what: str) -> None:
    """The shares of a profile_self_time() result, `what` naming the profiled query."""
    if "error" in profile:
        print(f"\nprofile: {profile['error']}")
        return
    print(f"\nprofile ({profile['runs']} runs of {what}), self time by package:")
    print(table(["package", "share"], [[k, f"{v:.1%}"] for k, v in
                                       list(profile["self_time_share_by_package"].items())[:12]]))
    print("top functions by self time:")
    print(table(["function", "share"], [[k, f"{v:.1%}"] for k, v in
                                        list(profile["top_functions_by_self_time"].items())[:15]]))
    print("full tree: " + " / ".join(profile[k] for k in ("text", "html") if k in profile))


def _package(path: str) -> str:
    path = path.replace("\\", "/")
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0]
    for ours in ("app", "db", "domain", "bench"):
        if f"/{ours}/" in path and str(PROJECT_ROOT) in path:
            return f"(ours) {ours}"
    if path.startswith("<string>"):
        return "(generated: dataclass __init__ etc.)"
    if path.startswith("<"):
        return "(builtins)"
    return "(stdlib) " + Path(path).stem
