#!/usr/bin/env bash
# Starts a private PostgreSQL for the server tests: initdb in DIR, listening on 127.0.0.1:PORT
# only (no Unix socket), trust authentication, durability off. Prints its URL on stdout.
# As root (initdb refuses root) the server runs as PLATEWATCH_PG_OS_USER (default `postgres`,
# created if missing). Stop it with stop-test-postgres.sh DIR.
#
#   usage: start-test-postgres.sh DIR [PORT]     (PORT: a free one if omitted)
#   CI:    export PLATEWATCH_PG_URL="$(server/scripts/start-test-postgres.sh /tmp/pw-pg)"
set -euo pipefail

dir=${1:?usage: start-test-postgres.sh DIR [PORT]}
port=${2:-}

bindir=""
for d in "${PG_BIN:-}" /usr/local/bin /usr/lib/postgresql/*/bin; do
  if [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then bindir=$d; break; fi
done
if [ -z "$bindir" ]; then
  echo "start-test-postgres: initdb/pg_ctl not found (install Debian's postgresql, or set PG_BIN)" >&2
  exit 1
fi

if [ -z "$port" ]; then
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
fi

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
run=()
if [ "$(id -u)" = 0 ]; then
  user=${PLATEWATCH_PG_OS_USER:-postgres}
  if ! id "$user" >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /usr/sbin/nologin "$user"
  fi
  chown -R "$user" "$dir"
  run=(runuser -u "$user" --)
fi

"${run[@]}" "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --no-sync \
  >"$dir/initdb.log" 2>&1 || { echo "start-test-postgres: initdb failed:" >&2; cat "$dir/initdb.log" >&2; exit 1; }
"${run[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
  -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories= -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
  start </dev/null >"$dir/pg_ctl.log" 2>&1 || { echo "start-test-postgres: postgres did not start:" >&2; cat "$dir/postgres.log" >&2; exit 1; }
echo "$bindir" >"$dir/bindir"
echo "postgres://postgres@127.0.0.1:$port/postgres"
