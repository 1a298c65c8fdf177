# shellcheck shell=bash
# bench-ref.sh: the W1ref section of scripts/bench.sh (issue 13): W1's
# connect at the server's DEFAULT settings (history on, presence events on
# with the count mode above PRESENCE_EVENTS_MAX, access log on) against
# PRESENCE_EVENTS=off and against cmd/wsbench/refhub, a minimal
# gorilla/websocket hub (upgrade, one room, broadcast; no auth, database,
# presence or history), all in the same run, on the same cores.
#
# Two shapes: N1 sockets from N1/5 users (-users) and N1 distinct users,
# one group. Each shape runs REF_REPS times (default 3) per server, the
# servers in a rotated order each time (def off ref, off ref def, ref def
# off) so that background load hits all of them alike; the report gives
# medians. Sourced by bench.sh, whose globals and functions it uses (OUT,
# BIN, DBDIR, SECRET, SERVER_PIDS, SERVER_URLS, bench, stop_servers,
# wanted, log, die).
#
# W5ref is the same comparison for paced latency (issue 13): W5 (N3
# members, 200 messages/s, BENCH_DURATION) against switchboard at defaults
# (history on), switchboard with HISTORY_SIZE=0 and refhub, REF_REPS times
# in the same rotation; the report lists every run.

REF_REPS=${REF_REPS:-3}
REF_SERVERS=(def off ref)

# start_defaults_server NAME [VAR=value...]: switchboard with nothing but
# what a run needs (address, secret, database dir): every other setting at
# its default, unlike start_server's WS_RATE_LIMIT=0, large WS_SEND_QUEUE
# and LOG_LEVEL=warn.
start_defaults_server() {
  local name=$1
  shift
  ref_start "$name" env -u DATABASE_URL -u REDIS_URL JWT_SECRET="$SECRET" \
    ${PPROF_PORT:+PPROF_ADDR=127.0.0.1:$PPROF_PORT} "$@" taskset -c 0 "$BIN/switchboard"
}

# start_refhub NAME: the reference hub, room chat-b (wsbench's one group).
start_refhub() {
  ref_start "$1" taskset -c 0 "$BIN/refhub" -group chat-b
}

# ref_start NAME CMD...: runs CMD (ADDR in its environment) on a free port in DBDIR and waits until it listens.
ref_start() {
  local name=$1 port
  shift
  port=$(sb_free_port) || die "no free port"
  (
    cd "$DBDIR"
    export ADDR="127.0.0.1:$port" # refhub reads it too
    exec "$@"
  ) </dev/null >>"$OUT/$name.server.log" 2>&1 &
  await_server "$name" "$port" server
}

# ref_one LABEL SERVER ARGS...: one fresh server of kind SERVER (def, off,
# ref), one wsbench idle run, server stopped.
ref_one() {
  local label=$1 kind=$2
  shift 2
  case $kind in
    def) start_defaults_server "$label" ;;
    off) start_defaults_server "$label" PRESENCE_EVENTS=off ;;
    hoff) start_defaults_server "$label" HISTORY_SIZE=0 ;;
    ref) start_refhub "$label" ;;
  esac
  bench "$label" "$@"
  stop_servers
}

# ref_runs: the whole section (BENCH_ONLY="W1ref W5ref" runs just it).
ref_runs() {
  wanted W1ref || wanted W5ref || return 0
  log "building refhub"
  (cd "$ROOT" && go build -o "$BIN/refhub" ./cmd/wsbench/refhub)
  w1ref_runs
  w5ref_runs
}

w1ref_runs() {
  wanted W1ref || return 0
  local rep k j shape users
  for ((rep = 1; rep <= REF_REPS; rep++)); do
    for shape in u d; do
      users=()
      [ "$shape" = d ] || users=(-users $((N1 / 5)))
      for ((j = 0; j < 3; j++)); do
        k=${REF_SERVERS[$(((rep - 1 + j) % 3))]}
        ref_one "W1ref-$shape$k-$rep" "$k" idle -n "$N1" "${users[@]}" -hold "$HOLD" -timeout 15m
      done
    done
  done
}

# W5REF_SERVERS: defaults (history on), history off, the reference hub.
W5REF_SERVERS=(def hoff ref)

w5ref_runs() {
  wanted W5ref || return 0
  local rep k j
  for ((rep = 1; rep <= REF_REPS; rep++)); do
    for ((j = 0; j < 3; j++)); do
      k=${W5REF_SERVERS[$(((rep - 1 + j) % 3))]}
      ref_one "W5ref-$k-$rep" "$k" fanout -n "$N3" -rate 200 -duration "$D" -timeout 10m
    done
  done
}

# w5ref_markdown: every W5ref run of this OUT as a row of the messages
# table, in the order they ran.
w5ref_markdown() {
  local f l rows=()
  while IFS= read -r f; do
    l=$(basename "$f" .txt)
    rows+=("$l=$f")
  done < <(ls -tr "$OUT"/W5ref-*.txt 2>/dev/null)
  [ "${#rows[@]}" -gt 0 ] || return 0
  cat <<EOF
### W5 at defaults against the reference hub (W5ref)

\`W5ref\` (scripts/lib/bench-ref.sh): \`wsbench fanout -n $N3 -rate 200 -duration $D\` against
three servers, each fresh and pinned to core 0 with wsbench on core 1: **def**
(switchboard with only \`ADDR\` and \`JWT_SECRET\` set: history on, the per-client rate
limit and send queue at their defaults, access log on), **hoff** (the same with
\`HISTORY_SIZE=0\`) and **ref** (\`cmd/wsbench/refhub\`, gorilla/websocket's chat
example). Every server ran $REF_REPS times, in a rotated order; the rows are in
the order they ran.

EOF
  "$BIN/wsbench" markdown "${rows[@]}"
  echo
}

# ref_markdown: the section of BENCHMARKS.md, when this OUT has its runs.
ref_markdown() {
  local shape k rep files rows title
  w5ref_markdown
  [ -n "$(ls "$OUT"/W1ref-* 2>/dev/null)" ] || return 0
  cat <<EOF
### W1 at defaults against the reference hub (W1ref)

\`W1ref\` (scripts/lib/bench-ref.sh): \`wsbench idle -n $N1 [-users $((N1 / 5))] -hold $HOLD\` against
three servers, each fresh and pinned to core 0 with wsbench on core 1:
**defaults** (switchboard with only \`ADDR\` and \`JWT_SECRET\` set: history on,
presence events on with the count mode above \`PRESENCE_EVENTS_MAX\`=500, access
log on), **presence off** (the same with \`PRESENCE_EVENTS=off\`) and **reference**
(\`cmd/wsbench/refhub\`: gorilla/websocket's chat example, one room, no auth, no
database, no presence). Every shape ran $REF_REPS times per server, the servers in
a rotated order each time; medians over the ok runs, × is the median connect rate
against the first row's.

EOF
  for shape in u d; do
    if [ "$shape" = u ]; then title="$N1 sockets from $((N1 / 5)) users, one group"; else title="$N1 distinct users, one group"; fi
    rows=()
    for k in def off ref; do
      files=()
      for ((rep = 1; rep <= REF_REPS; rep++)); do
        [ ! -f "$OUT/W1ref-$shape$k-$rep.txt" ] || files+=("$OUT/W1ref-$shape$k-$rep.txt")
      done
      [ "${#files[@]}" = 0 ] || rows+=("$(ref_label "$k")=$(IFS=,; echo "${files[*]}")")
    done
    [ "${#rows[@]}" = 0 ] && continue
    printf '%s:\n\n' "$title"
    "$BIN/wsbench" compare "${rows[@]}"
    echo
  done
}

ref_label() {
  case $1 in
    def) echo defaults ;;
    off) echo "presence off" ;;
    ref) echo reference ;;
  esac
}
