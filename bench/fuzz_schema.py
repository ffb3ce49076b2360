"""Schema fuzzing: schemathesis generates queries and mutations for every root field, valid and
odd, and sends them to a real server on the demo data as each role.

Counts what must never happen: a server error (HTTP 5xx, or an error coded
INTERNAL_SERVER_ERROR), an error without `extensions.code`, and an answer over the limits (a body
over MAX_RESPONSE_BYTES, or slower than the statement timeout). Prints a table per role and writes
bench/results/fuzz_schema.json.

    .venv/bin/pip install -e '.[fuzz]'
    .venv/bin/python -m bench.fuzz_schema [--examples 40]
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings

from bench.common import PROJECT_ID, RESULTS_DIR, running_server, scratch_database, table, write_results
from app.auth import make_emulator_token

ROLES = {"admin": None, "operator": None, "agent": "SUNTRAVEL"}
MAX_RESPONSE_BYTES = 1_000_000
SLOW_S = 15.0  # DB_STATEMENT_TIMEOUT_MS's default: nothing legitimate takes longer


def _findings(response: httpx.Response, elapsed_s: float) -> list[str]:
    found = []
    if response.status_code >= 500:
        found.append(f"HTTP {response.status_code}")
    if len(response.content) > MAX_RESPONSE_BYTES:
        found.append(f"{len(response.content)} bytes")
    if elapsed_s > SLOW_S:
        found.append(f"{elapsed_s:.1f} s")
    try:
        body = response.json()
    except ValueError:
        return [*found, "not JSON"] if response.status_code < 500 else found
    for error in body.get("errors") or [] if isinstance(body, dict) else []:
        code = (error.get("extensions") or {}).get("code")
        if code is None:
            found.append(f"no code: {error.get('message', '')[:80]}")
        elif code == "INTERNAL_SERVER_ERROR":
            found.append("INTERNAL_SERVER_ERROR")
    return found


def fuzz_role(base: str, role: str, agency: str | None, examples: int) -> dict[str, Any]:
    token = make_emulator_token(role=role, agency=agency, project_id=PROJECT_ID, lifetime_s=6 * 3600)
    headers = {"Authorization": f"Bearer {token}"}
    schema = schemathesis.graphql.from_url(f"{base}/graphql", headers=headers)
    statuses: Counter[int] = Counter()
    codes: Counter[str] = Counter()
    problems: list[dict[str, Any]] = []
    largest, slowest = 0, 0.0
    with httpx.Client(base_url=base, headers=headers, timeout=60, trust_env=False) as client:
        for result in schema.get_all_operations():
            operation = result.ok()

            @given(case=operation.as_strategy())
            @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
                      suppress_health_check=list(HealthCheck))
            def send(case: Any) -> None:
                nonlocal largest, slowest
                request = case.body if isinstance(case.body, dict) else {"query": case.body}
                started = time.perf_counter()
                response = client.post("/graphql", json=request)
                elapsed = time.perf_counter() - started
                statuses[response.status_code] += 1
                largest, slowest = max(largest, len(response.content)), max(slowest, elapsed)
                body = response.json() if response.headers.get("content-type", "").startswith("application/json") \
                    else {}
                for error in (body.get("errors") or []) if isinstance(body, dict) else []:
                    codes[str((error.get("extensions") or {}).get("code"))] += 1
                if found := _findings(response, elapsed):
                    problems.append({"operation": operation.label, "query": request["query"][:500],
                                     "found": found})

            send()
    return {"requests": sum(statuses.values()), "statuses": dict(statuses), "error_codes": dict(codes),
            "largest_response_bytes": largest, "slowest_s": round(slowest, 3), "problems": problems}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fuzz_schema", description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=40, help="generated requests per root field and role")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {}
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    with scratch_database() as (url, _), running_server(url, RESULTS_DIR / "fuzz_schema.server.log",
                                                          extra_env={"SEED_DEMO": "1"}) as (base, _):
        for role, agency in ROLES.items():
            results[role] = fuzz_role(base, role, agency, args.examples)
    rows = [(role, r["requests"], sum(len(p["found"]) > 0 for p in r["problems"]), r["largest_response_bytes"],
             r["slowest_s"], r["statuses"]) for role, r in results.items()]
    print(table(["role", "requests", "problems", "largest body (bytes)", "slowest (s)", "HTTP statuses"], rows))
    for role, r in results.items():
        for problem in r["problems"][:10]:
            print(f"{role}: {problem['operation']}: {', '.join(problem['found'])}\n  {problem['query'][:200]}")
    path: Path = write_results("fuzz_schema", {"examples_per_field": args.examples, "roles": results})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
