#!/usr/bin/env bash
# Stops a server started by start-test-postgres.sh DIR (fast shutdown); REMOVE=1 deletes DIR.
set -euo pipefail
dir=${1:?usage: stop-test-postgres.sh DIR}
bindir=$(cat "$dir/bindir" 2>/dev/null || echo /usr/local/bin)
run=()
if [ "$(id -u)" = 0 ]; then run=(runuser -u "$(stat -c %U "$dir/data")" --); fi
"${run[@]}" "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
if [ "${REMOVE:-0}" = 1 ]; then rm -rf "$dir"; fi
