"""`{ viewer { uid role } }` requests/s over HTTP against a bare Starlette JSON endpoint, in the same
run.

    .venv/bin/python -m bench.viewer [--seconds 10] [--warmup 3] [--connections 16] [--repeats 3]

The app: `staysync serve --no-migrate --workers 1` on a throwaway database (as bench.calendar_http).
The comparator: bench/bare_app.py, a Starlette app whose POST /graphql reads the body and answers
a fixed JSON object of the same shape, served by uvicorn with the same options, one worker. Both
run side by side; each is driven in turn by wrk (bench/loadgen.py, bench/wrk/viewer.lua; installed
from Debian when missing), one thread, `--connections` connections, the same POST /graphql with a
bearer token (admin, operator and agent tokens rotating), `--warmup` seconds untimed then
`--seconds` timed. The order alternates between the `--repeats` repeats so drift hits both alike;
the best run of each is kept. Every response is checked to carry the viewer (any other is an
error).

CPU per request of every run: the client (wrk's rusage), the server process and the PostgreSQL
cluster (/proc; see bench/loadgen.py for what is summed).

Target (DESIGN.md): app requests/s >= 0.25 x the bare endpoint's.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from bench.bare_app import BARE_LAUNCHER
from bench.common import (
    PROJECT_ID,
    PROJECT_ROOT,
    RESULTS_DIR,
    postgres_server_pid,
    running_server,
    scratch_database,
    table,
    target,
    targets_table,
    write_results,
)
from bench.loadgen import cpu_per, cpu_table, ensure_wrk, run_wrk

QUERY = "{ viewer { uid role } }"
RATIO_LIMIT = 0.25
CLASSIFY = [['"errors"%s*:', "GraphQL error"], ['"viewer"%s*:%s*{%s*"uid"', "viewer"]]


def viewer_tokens() -> list[str]:
    from app.auth import make_emulator_token

    claims = [{"role": "admin"}, {"role": "operator"}, {"role": "agent", "agency": "BENCHA"},
              {"role": "agent", "agency": "BENCHB"}]
    return [make_emulator_token(**c, uid=f"bench-viewer-{n}", project_id=PROJECT_ID, lifetime_s=6 * 3600)
            for n, c in enumerate(claims)]


def load(base: str, pid: int, postmaster: int | None, args: argparse.Namespace, token: list[str],
         name: str) -> dict[str, Any]:
    import json

    config = {"body": json.dumps({"query": QUERY}), "tokens": token, "classify": CLASSIFY}
    common = {"name": f"viewer.{name}", "connections": args.connections, "threads": 1}
    if args.warmup:
        run_wrk("viewer", [base], config, seconds=args.warmup, **common)
    run = run_wrk("viewer", [base], config, seconds=args.seconds, cpu_roots={"server": pid, "postgres": postmaster},
                  **common)
    ok = run["outcomes"].get("viewer", 0)
    return {
        "requests_per_s": round(ok / run["seconds"], 1),
        "responses": run["responses"],
        "errors": run["responses"] - ok,
        "outcomes": run["outcomes"],
        "latency_ms": run["latency_ms"],
        "seconds": run["seconds"],
        "cpu_s": run["cpu_s"],
        "cpu_ms_per_request": cpu_per(run, run["responses"]),
        "samples": run["samples"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.viewer", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10, help="measured seconds per run (default 10)")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up seconds before each run (default 3)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved app/bare repeats; best kept (default 3)")
    args = parser.parse_args(argv)
    ensure_wrk()

    token = viewer_tokens()
    runs: dict[str, list[dict[str, Any]]] = {"app": [], "bare": []}
    with scratch_database() as (url, source):
        postmaster = postgres_server_pid(url)
        with running_server(url, RESULTS_DIR / "viewer.server.log") as (app_base, app_process), \
                running_server(url, RESULTS_DIR / "viewer.bare.log", launcher=BARE_LAUNCHER) as (bare_base, bare_process):
            servers = {"app": (app_base, app_process.pid), "bare": (bare_base, bare_process.pid)}
            print(f"app: staysync serve --workers 1 on {app_base}; bare Starlette endpoint on {bare_base}; client: "
                  f"wrk, 1 thread, {args.connections} connections; {args.repeats} interleaved repeats", flush=True)
            for repeat in range(args.repeats):
                for name in (("app", "bare") if repeat % 2 == 0 else ("bare", "app")):
                    base, pid = servers[name]
                    result = load(base, pid, postmaster, args, token, name)
                    runs[name].append(result)
                    cpu = result["cpu_ms_per_request"]
                    print(f"{name:4s}: {result['requests_per_s']:8.1f} requests/s  p50 {result['latency_ms']['p50']} ms  "
                          f"p99 {result['latency_ms']['p99']} ms  outcomes {result['outcomes']}  CPU ms/request "
                          f"client {_ms(cpu['client'])} server {_ms(cpu['server'])} PostgreSQL {_ms(cpu['postgres'])}",
                          flush=True)
                    if result["errors"]:
                        print(f"  samples {result['samples'][:2]}", flush=True)

    best = {name: max(values, key=lambda r: r["requests_per_s"]) for name, values in runs.items()}
    ratio = best["app"]["requests_per_s"] / best["bare"]["requests_per_s"] if best["bare"]["requests_per_s"] else 0.0
    print(f"\nbest of {args.repeats} interleaved runs each:")
    print(table(["case", "requests/s", "p50 ms", "p99 ms", "errors"], [
        [name, r["requests_per_s"], r["latency_ms"]["p50"], r["latency_ms"]["p99"], r["errors"]]
        for name, r in best.items()]))
    print()
    print(cpu_table([(name, r["cpu_ms_per_request"]) for name, r in best.items()], "request"))
    targets = [
        target("viewer requests/s / bare Starlette endpoint requests/s", ratio, RATIO_LIMIT, "x", op=">="),
        target("viewer responses that are not the viewer", sum(r["errors"] for v in runs.values() for r in v), 0),
    ]
    print()
    print(targets_table(targets))
    path = write_results("viewer", {
        "parameters": {"seconds": args.seconds, "warmup": args.warmup, "connections": args.connections,
                       "repeats": args.repeats, "postgres": source, "query": QUERY,
                       "client": f"wrk ({ensure_wrk()}), 1 thread, {args.connections} connections, bench/wrk/viewer.lua",
                       "server": "staysync serve --no-migrate --workers 1; comparator bench/bare_app.py, same uvicorn "
                                 "options, 1 worker",
                       "postgres_cpu": "postmaster of the benchmark's database and all its children (the cluster)"
                                       if postmaster else "not measured (processes not visible)"},
        "best": best,
        "all_runs": runs,
        "ratio": round(ratio, 3),
        "targets": targets,
        "pass": all(t["pass"] for t in targets),
    })
    print(f"\nwrote {path.relative_to(PROJECT_ROOT)}")
    return 0 if all(t["pass"] for t in targets) else 1


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    sys.exit(main())
