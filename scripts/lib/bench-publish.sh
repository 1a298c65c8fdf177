# shellcheck shell=bash
# bench-publish.sh: the P1/P2 section of scripts/bench.sh (issue 13,
# publish API). wsbench publish: 8 keep-alive HTTP clients with the API key
# for PUB_DURATION, P1 POST /api/groups/chat-p/messages to a group with 10
# members on /ws/chat/, P2 PUT /api/status/wsbench with 10 subscribers on
# /ws/status/wsbench/. Each runs against the old commit (PUB_OLD, default
# 312c245, the main before issue 13's round, built from a temporary git
# worktree) and the current tree, alternating (old new, then new old, …),
# PUB_REPS times, every server fresh on a database of its own at its
# DEFAULT settings (access log on, history on; only the address, secret and
# API key set), on SQLite, then on PostgreSQL (P1-pg, P2-pg, with fsync and
# synchronous_commit on) when installed and BENCH_PG is not 0.
#
#   PUB_REPS=2       old/new pairs per workload
#   PUB_DURATION=10s how long the clients send in each run
#   PUB_OLD=312c245  the old commit
#   PUB_SQLITE=0     skip the SQLite runs (PostgreSQL only)
#   BENCH_PPROF=1    also save a CPU profile (6 s, from 2 s after the start)
#                    of each current server (OUT/<label>.server.cpu.pprof)
#
# Sourced by bench.sh, whose globals and functions it uses (OUT, BIN, ROOT,
# SECRET, API_KEY, SERVER_PIDS, SERVER_URLS, bench, stop_servers, wanted,
# skip, log, die, ref_start, sb_*).

PUB_REPS=${PUB_REPS:-2}
PUB_DURATION=${PUB_DURATION:-10s}
PUB_OLD=${PUB_OLD:-312c245}

# publish_build_old: BIN/switchboard-old from PUB_OLD, once per OUT.
publish_build_old() {
  [ -x "$BIN/switchboard-old" ] && return 0
  local wt="$OUT/old-tree"
  rm -rf "$wt"
  git -C "$ROOT" worktree add -q --detach "$wt" "$PUB_OLD" || die "git worktree add $PUB_OLD"
  (cd "$wt" && go build -o "$BIN/switchboard-old" ./cmd/switchboard) || die "build $PUB_OLD"
  git -C "$ROOT" worktree remove --force "$wt"
}

# publish_one LABEL KIND WHICH DB: a fresh server (WHICH old or new) on DB
# (sqlite or a PostgreSQL URL), one wsbench publish run, server stopped.
publish_one() {
  local label=$1 kind=$2 which=$3 db=$4 bin=$BIN/switchboard url pprof="" dbdir prof=""
  [ "$which" = old ] && bin=$BIN/switchboard-old
  if [ "$db" = sqlite ]; then
    dbdir="$OUT/pubdb-$label"
    rm -rf "$dbdir"
    mkdir -p "$dbdir"
    url="sqlite:$dbdir/switchboard.db"
  else
    url=$db
    psql "$TEST_PG_ADMIN_URL" -v ON_ERROR_STOP=1 -qAt -c 'DROP DATABASE IF EXISTS switchboard_pub' -c 'CREATE DATABASE switchboard_pub' </dev/null >/dev/null
  fi
  if [ -n "${BENCH_PPROF:-}" ] && [ "$which" = new ]; then pprof=$(sb_free_port); fi
  ref_start "$label" env -u REDIS_URL DATABASE_URL="$url" JWT_SECRET="$SECRET" PUBLISH_API_KEY="$API_KEY" \
    ${pprof:+PPROF_ADDR=127.0.0.1:$pprof} taskset -c 0 "$bin"
  if [ -n "$pprof" ]; then
    (sleep 2; curl -s -o "$OUT/$label.server.cpu.pprof" "http://127.0.0.1:$pprof/debug/pprof/profile?seconds=6") &
    prof=$!
  fi
  BENCH_DB=$url bench "$label" publish -kind "$kind" -clients 8 -subscribers 10 -duration "$PUB_DURATION" -timeout 5m
  echo "$which $(if [ "$which" = old ]; then echo "$PUB_OLD"; else commit_of_tree; fi)" >"$OUT/$label.commit"
  stop_servers
  # Only the profile's curl: a bare wait would also wait for PostgreSQL.
  [ -z "$prof" ] || wait "$prof" 2>/dev/null || true
}

# publish_set SUFFIX DB: P1 and P2, old and new alternating, PUB_REPS times.
publish_set() {
  local sfx=$1 db=$2 rep kind p order which
  for ((rep = 1; rep <= PUB_REPS; rep++)); do
    for p in P1:group P2:status; do
      kind=${p#*:}
      order="old new"
      [ $((rep % 2)) = 0 ] && order="new old"
      for which in $order; do
        publish_one "${p%%:*}$sfx-$which-$rep" "$kind" "$which" "$db"
      done
    done
  done
}

# publish_runs: the whole section (BENCH_ONLY=P1 runs it).
publish_runs() {
  wanted P1 || return 0
  publish_build_old
  if [ "${PUB_SQLITE:-1}" = 1 ]; then publish_set "" sqlite; fi
  if [ "${BENCH_PG:-1}" = 0 ]; then
    log "P1-pg, P2-pg: skipped (BENCH_PG=0)"
  elif ! sb_find_pg_bin || ! command -v psql >/dev/null 2>&1; then
    log "P1-pg, P2-pg: skipped (PostgreSQL is not installed)"
  else
    [ -n "$SB_TMP" ] || sb_make_tmp
    sb_start_postgres
    taskset -a -p -c 0 "$(head -n 1 "$SB_TMP/pg/postmaster.pid")" >/dev/null 2>&1 || true
    # The throwaway server runs with fsync and synchronous_commit off (fast
    # tests); a 200 from PUT /api/status must mean a durable commit, so
    # these runs use PostgreSQL's defaults (both on; reloadable).
    psql "$TEST_PG_ADMIN_URL" -v ON_ERROR_STOP=1 -qAt -c 'ALTER SYSTEM SET fsync = on' \
      -c 'ALTER SYSTEM SET synchronous_commit = on' -c 'SELECT pg_reload_conf()' </dev/null >/dev/null
    publish_set -pg "postgres://$SB_PG_ROLE@127.0.0.1:$SB_PG_PORT/switchboard_pub?sslmode=disable"
    sb_stop_postgres
  fi
}

# publish_markdown: the section of BENCHMARKS.md, when this OUT has runs.
publish_markdown() {
  local f rows=()
  for f in "$OUT"/P[12]-*.txt "$OUT"/P[12]-pg-*.txt; do
    [ -f "$f" ] || continue
    rows+=("$(basename "$f" .txt)=$f")
  done
  [ ${#rows[@]} -gt 0 ] || return 0
  cat <<EOF
### Publish API (P1, P2)

\`wsbench publish -kind group|status -clients 8 -subscribers 10 -duration $PUB_DURATION\`
(scripts/lib/bench-publish.sh): 8 keep-alive HTTP clients, one request in
flight each, with \`Authorization: Api-Key\`; P1 POSTs to a group with 10
members on /ws/chat/, P2 PUTs one status key with 10 subscribers on
/ws/status/. *old* is $PUB_OLD, *new* the tree named in the row, each a fresh
server at its defaults (access log on, history on) on a database of its
own, in turn. *µs CPU/req* is the server's utime+stime over the send phase
per answered request (it includes the delivery to the subscribers).
*lost*: P1, publishes a member did not get in order; P2, subscribers that
did not end at the last acknowledged version (a subscriber skips versions
it has passed: *coalesced*).

EOF
  "$BIN/wsbench" publish markdown "${rows[@]}"
  echo
}
