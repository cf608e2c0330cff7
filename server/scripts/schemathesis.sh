#!/usr/bin/env bash
# Schemathesis against `platewatch serve` (SQLite, loopback) with the server's own OpenAPI
# document, every check on (schemathesis 4 runs all of them unless told otherwise; `--checks
# all` on the command line would also override the per-operation settings below), as an
# admin, an officer and an officer's device:
# any 5xx, any response the document does not describe, any schema-valid request refused and
# any schema-invalid request accepted is a failure. Time-boxed by the examples per operation.
#
#   usage: server/scripts/schemathesis.sh PLATEWATCH_BINARY
#   needs: python3 -m pip install -r server/scripts/requirements-schemathesis.txt
#   env:   SCHEMATHESIS_MAX_EXAMPLES (default 10), SCHEMATHESIS_SEED (default: random)
#
# server/scripts/schemathesis.toml turns one check off for the operations whose rules JSON
# Schema cannot state (it says which and why).
#
# Operations that end the caller's own token or change what every caller must acknowledge
# (logout, revokeUserSessions, updateUser, setRules) run last, in a phase of their own with a
# token of their own, so that they do not cut the other phases short.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
bin=$(cd "$(dirname "${1:?usage: schemathesis.sh PLATEWATCH_BINARY}")" && pwd)/$(basename "$1")
max=${SCHEMATHESIS_MAX_EXAMPLES:-10}
seed=()
[ -n "${SCHEMATHESIS_SEED:-}" ] && seed=(--seed "$SCHEMATHESIS_SEED")
command -v schemathesis >/dev/null || {
  echo "schemathesis.sh: schemathesis not found (pip install -r server/scripts/requirements-schemathesis.txt)" >&2
  exit 1
}

work=$(mktemp -d /tmp/platewatch-schemathesis.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base=http://127.0.0.1:$port
admin_pw=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
(
  cd "$work"
  PLATEWATCH_ADMIN_USER=admin PLATEWATCH_ADMIN_PASSWORD=$admin_pw \
    exec "$bin" serve --listen "127.0.0.1:$port" --database-url "sqlite://$work/server.db" \
    >"$work/serve.log" 2>&1
) &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -rf "$work"' EXIT

# POST JSON, print one field of the JSON answer.
post() { # URL TOKEN BODY FIELD
  python3 - "$@" <<'PY'
import json, sys, urllib.request
url, token, body, field = sys.argv[1:5]
req = urllib.request.Request(url, data=body.encode(), method="POST",
                             headers={"content-type": "application/json"})
if token:
    req.add_header("authorization", "Bearer " + token)
print(json.load(urllib.request.urlopen(req, timeout=30))[field])
PY
}

for _ in $(seq 100); do
  python3 -c "import urllib.request; urllib.request.urlopen('$base/openapi.json', timeout=1)" 2>/dev/null && break
  kill -0 $server 2>/dev/null || { cat "$work/serve.log" >&2; exit 1; }
  sleep 0.2
done

login() { post "$base/v1/login" "" "{\"username\":\"$1\",\"password\":\"$2\"}" token; }
admin=$(login admin "$admin_pw")
officer_pw=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
post "$base/v1/users" "$admin" "{\"username\":\"ofc.st\",\"password\":\"$officer_pw\",\"role\":\"officer\"}" id >/dev/null
officer=$(login ofc.st "$officer_pw")
device=$(post "$base/v1/devices" "$officer" '{"name":"schemathesis phone"}' token)

own_token_ops=(logout revokeUserSessions updateUser setRules)
excluded=()
for op in "${own_token_ops[@]}"; do excluded+=(--exclude-operation-id "$op"); done
included=()
for op in "${own_token_ops[@]}"; do included+=(--include-operation-id "$op"); done

run() { # NAME TOKEN ARGS...
  local name=$1 token=$2
  shift 2
  echo "== schemathesis as $name (max $max examples per operation)"
  # (in the work directory: schemathesis keeps a cache in the current directory)
  (cd "$work" && schemathesis --config-file "$here/schemathesis.toml" run "$base/openapi.json" \
    --max-examples "$max" "${seed[@]}" -H "Authorization: Bearer $token" --no-color "$@")
}

status=0
run admin "$admin" "${excluded[@]}" || status=1
run officer "$officer" "${excluded[@]}" || status=1
run device "$device" "${excluded[@]}" || status=1
run "admin (own-token operations)" "$(login admin "$admin_pw")" "${included[@]}" || status=1
exit $status
