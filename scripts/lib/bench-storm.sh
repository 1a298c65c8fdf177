# shellcheck shell=bash
# bench-storm.sh: the S1 section of scripts/bench.sh (issue 13, reconnect
# storm). First S1-w1b, W1b's run (wsbench idle -n N1B on a fresh server),
# for the target's connect rate in this run; then S1: wsbench storm with
# N1B members of one group from 2 processes over 4 source addresses, 100
# messages published, the server SIGKILLed and started again on the same
# address by $OUT/S1.restart.sh (which wsbench runs), every member coming
# back with the page's backoff and since/epoch. Target: all welcomed again
# within N1B / (S1-w1b connects/s) × 1.5 s, 0 failures beyond the cut, all
# recovered with no gap.
#
#   STORM_REPS=1   storms per run (S1, S1-2, …), each with its own W1b
#                  reference right before it
#   BENCH_PPROF=1  serve pprof on the restarted server and save a 10 s CPU
#                  profile of it from its start (OUT/S1.server.cpu.pprof)
#
# Sourced by bench.sh, whose globals and functions it uses (OUT, BIN,
# DBDIR, SECRET, API_KEY, SEND_QUEUE, N1B, SERVER_PIDS, SERVER_URLS,
# start_server, bench, stop_servers, wanted, log).

STORM_REPS=${STORM_REPS:-1}

# storm_restart_script LABEL PORT: writes OUT/LABEL.restart.sh, which
# starts switchboard again as start_server did (same port, database and
# settings; the secret and API key come from wsbench's environment), prints
# its process id and records it in OUT/LABEL.restarted.pid.
storm_restart_script() {
  local label=$1 port=$2 pprof=""
  if [ -n "${BENCH_PPROF:-}" ]; then pprof=$(sb_free_port); fi
  cat >"$OUT/$label.restart.sh" <<SCRIPT
#!/bin/sh
cd '$DBDIR' || exit 1
env -u DATABASE_URL -u REDIS_URL ADDR=127.0.0.1:$port WS_RATE_LIMIT=0 WS_SEND_QUEUE=$SEND_QUEUE LOG_LEVEL=warn \\
  ${pprof:+PPROF_ADDR=127.0.0.1:$pprof} taskset -c 0 '$BIN/switchboard' </dev/null >>'$OUT/$label.server.log' 2>&1 &
echo \$! >'$OUT/$label.restarted.pid'
${pprof:+curl -s --retry 50 --retry-connrefused --retry-delay 0 -o '$OUT/$label.server.cpu.pprof' 'http://127.0.0.1:$pprof/debug/pprof/profile?seconds=10' </dev/null >/dev/null 2>&1 &}
echo \$(cat '$OUT/$label.restarted.pid')
SCRIPT
}

# storm_one LABEL: the W1b reference and one storm.
storm_one() {
  local label=$1 rate port i
  start_server "$label-w1b"
  bench "$label-w1b" idle -n "$N1B" -hold 10s -timeout 45m
  stop_servers
  rate=$(grep -o '"connects_per_s":[0-9.]*' "$OUT/$label-w1b.txt" | head -n 1 | cut -d: -f2)
  start_server "$label"
  port=${SERVER_URLS[0]##*:}
  storm_restart_script "$label" "$port"
  rm -f "$OUT/$label.restarted.pid"
  bench "$label" storm -n "$N1B" -procs 2 -sources 4 -missed 100 ${rate:+-ref-rate "$rate"} \
    -restart-cmd "sh $OUT/$label.restart.sh" -timeout 10m
  # The profile (BENCH_PPROF) ends 10 s after the restart: wait for it.
  if [ -n "${BENCH_PPROF:-}" ]; then
    for ((i = 0; i < 150; i++)); do
      [ ! -s "$OUT/$label.server.cpu.pprof" ] || break
      sleep 0.1
    done
  fi
  # The restarted server is not bench.sh's child: stop it with the rest.
  if [ -s "$OUT/$label.restarted.pid" ]; then SERVER_PIDS+=("$(cat "$OUT/$label.restarted.pid")"); fi
  stop_servers
}

# storm_runs: the whole section (BENCH_ONLY=S1 runs just it).
storm_runs() {
  wanted S1 || return 0
  local rep
  for ((rep = 1; rep <= STORM_REPS; rep++)); do
    if [ "$rep" = 1 ]; then storm_one S1; else storm_one "S1-$rep"; fi
  done
}

# storm_markdown: the section of BENCHMARKS.md, when this OUT has storms.
storm_markdown() {
  local f l rows=()
  for f in "$OUT"/S1.txt "$OUT"/S1-[0-9]*.txt; do
    [ -f "$f" ] || continue
    case $f in *-w1b.txt) continue ;; esac
    l=$(basename "$f" .txt)
    rows+=("$l=$f")
  done
  [ ${#rows[@]} -gt 0 ] || return 0
  cat <<EOF
### Reconnect storm (S1)

\`S1\` (scripts/lib/bench-storm.sh): \`wsbench storm -n $N1B -procs 2 -sources 4 -missed 100\`:
$N1B members of one group connect (2 wsbench processes on core 1, 4 source
addresses), 100 messages are published to the group (each stored before its
202) and right after the last one the server is killed with SIGKILL and
started again on the same address. Every member reconnects as the page
does (web/switchboard.js: first retry after 1.0–1.2 s, then 1 s doubling
to 30 s ±20%; GET /api/users/me after a failed handshake) with
\`?since=&epoch=\` of the last message it had read, and must be welcomed
with \`recovered: true\` and get exactly the messages it had not read.
Times are from the SIGKILL. *W1 ref* is W1b's run (\`S1-w1b\`: \`wsbench idle
-n $N1B\` on a fresh server) right before each storm; the target is all
welcomed within $N1B / W1 ref × 1.5 s. *Failures while down* are dials
started before the address accepted TCP again (the cut itself); CPU and
peak RSS (VmHWM) are the restarted server's, from its start until every
member had caught up.

EOF
  "$BIN/wsbench" storm markdown "${rows[@]}"
  echo
}
