#!/bin/sh
# graphql-http's audit (https://github.com/graphql/graphql-http) of /graphql, on loopback.
#
#   bench/graphql_http_audit.sh        # from the project root, after `make install`
#
# Needs node >= 18 and npm (it installs graphql-http into a temporary directory, so the network
# once); not part of `make test`. Uses DATABASE_URL, or the embedded PostgreSQL when it is unset.
# Expected: {"ok":61,"warn":0,"error":0}.
set -eu
cd "$(dirname "$0")/.."
PORT=${AUDIT_PORT:-3919}
WORK=$(mktemp -d)
trap 'kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; rm -rf "$WORK"' EXIT INT TERM
npm install --silent --prefix "$WORK" graphql-http@1.23.1 graphql@16.11.0 >/dev/null
cp bench/graphql_http_audit.mjs "$WORK/"
export APP_ENV=development FIREBASE_AUTH_EMULATOR_HOST=127.0.0.1:9099 SEED_DEMO=0
TOKEN=$(.venv/bin/staysync token --role admin)
export TOKEN
.venv/bin/staysync serve --port "$PORT" >"$WORK/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 150); do
  curl -sf -o /dev/null "http://127.0.0.1:$PORT/health" && break
  sleep 0.2
done
node "$WORK/graphql_http_audit.mjs" "http://127.0.0.1:$PORT/graphql"
