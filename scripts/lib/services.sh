# shellcheck shell=bash
# services.sh: helpers for scripts/test.sh. Source it; it defines functions and
# SB_* globals only and starts nothing by itself.
#
# Everything started here is recorded in SB_* globals so that sb_cleanup (run
# from an EXIT trap) can stop it: PostgreSQL with pg_ctl stop -m immediate,
# redis-server by PID. Both run as children of the calling shell.

SB_TMP=""          # temp dir holding the PG data dir, sockets, logs, redis dir
SB_PG_BIN=""       # dir with initdb, pg_ctl, postgres, psql, pg_isready
SB_PG_OSUSER=""    # OS user that owns and runs the PG cluster (never root)
SB_PG_ROLE="postgres"  # bootstrap superuser role name (initdb -U)
SB_PG_PORT=""
SB_PG_STARTED=""
SB_PG_PID=""       # PID of our child running postgres (runuser or postgres)
SB_REDIS_PID=""
SB_REDIS_PORT=""
SB_COMPOSE=""      # path of docker-compose when installed
SB_CHILD=""        # PID (= process group) of the command sb_run is waiting for

sb_log() { printf '[test.sh] %s\n' "$*" >&2; }
sb_die() { sb_log "ERROR: $*"; exit 1; }

sb_is_root() { [ "$(id -u)" -eq 0 ]; }

# sb_as_root runs a command as root: directly, or via passwordless sudo.
sb_as_root() {
  if sb_is_root; then
    "$@"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo -n "$@"
  else
    return 1
  fi
}

# sb_find_pg_bin sets SB_PG_BIN to a dir holding initdb, pg_ctl and postgres:
# the one on PATH (here /usr/local/bin), else Debian's /usr/lib/postgresql/N/bin,
# newest N first. pg_isready and psql are taken from the same dir or PATH.
sb_find_pg_bin() {
  local d cand
  SB_PG_BIN=""
  # shellcheck disable=SC2012 # the glob only yields /usr/lib/postgresql/N/bin
  for cand in "$(command -v initdb 2>/dev/null || true)" \
              $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4,4 -V -r); do
    [ -n "$cand" ] || continue
    if [ -f "$cand" ]; then d=$(dirname "$cand"); else d=$cand; fi
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/postgres" ]; then
      SB_PG_BIN=$d
      return 0
    fi
  done
  return 1
}

# sb_pg_tool prints the path of a PG client tool (psql, pg_isready), preferring
# the server's bin dir so that versions match.
sb_pg_tool() {
  if [ -n "$SB_PG_BIN" ] && [ -x "$SB_PG_BIN/$1" ]; then
    printf '%s\n' "$SB_PG_BIN/$1"
  else
    command -v "$1"
  fi
}

# sb_ensure_packages installs, with apt-get, what the tests need and is missing.
# apt-get update runs once, and only when something is missing.
# Required: PostgreSQL server + client, redis-server (+ redis-cli), gcc (for
# -race), chromium (browser tests), python3-jwt (PyJWT interop test) and
# docker-compose (compose file check).
sb_ensure_packages() {
  local required=()
  sb_find_pg_bin || required+=(postgresql)
  if ! command -v psql >/dev/null 2>&1 && [ ! -x "${SB_PG_BIN:-/nonexistent}/psql" ]; then
    required+=(postgresql-client)
  fi
  command -v redis-server >/dev/null 2>&1 || required+=(redis-server)
  command -v redis-cli >/dev/null 2>&1 || required+=(redis-tools)
  command -v gcc >/dev/null 2>&1 || required+=(gcc libc6-dev)
  # The browser tests, the PyJWT interop test and the compose check are part
  # of the suite, so their tools are required too.
  [ -x /usr/bin/chromium ] || required+=(chromium)
  /usr/bin/python3 -c 'import jwt' >/dev/null 2>&1 || required+=(python3-jwt)
  # The Django import test (cmd/switchboard/importusers_test.go) has a real
  # Django 3.2 create users under every hasher it ships.
  /usr/bin/python3 -c 'import django' >/dev/null 2>&1 || required+=(python3-django)
  /usr/bin/python3 -c 'import argon2' >/dev/null 2>&1 || required+=(python3-argon2)
  /usr/bin/python3 -c 'import bcrypt' >/dev/null 2>&1 || required+=(python3-bcrypt)
  # Debian 12's "docker-compose" (1.29.x, Python) parses and validates a
  # compose file with `docker-compose config` without a Docker engine. Debian 12
  # has no compose v2 package (docker-compose-plugin is Docker Inc.'s repo).
  command -v docker-compose >/dev/null 2>&1 || required+=(docker-compose)

  if [ ${#required[@]} -eq 0 ]; then
    return 0
  fi
  if ! sb_as_root true 2>/dev/null || ! command -v apt-get >/dev/null 2>&1; then
    sb_die "missing ${required[*]} and cannot install (need root or passwordless sudo, and apt-get)"
  fi

  local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -q)
  local aptlog
  aptlog=$(mktemp /tmp/switchboard-apt.XXXXXX.log)
  sb_log "installing with apt-get: ${required[*]} (log: $aptlog)"
  sb_as_root "${apt[@]}" update </dev/null >>"$aptlog" 2>&1 \
    || { tail -n 30 "$aptlog" >&2; sb_die "apt-get update failed"; }
  sb_as_root "${apt[@]}" install -y --no-install-recommends "${required[@]}" </dev/null >>"$aptlog" 2>&1 \
    || { tail -n 30 "$aptlog" >&2; sb_die "apt-get install ${required[*]} failed"; }
  sb_log "apt-get done"
  rm -f "$aptlog"
  sb_find_pg_bin || sb_die "PostgreSQL server binaries not found after install"
}

# sb_free_port prints a TCP port that is free on 127.0.0.1 right now.
sb_free_port() {
  local p
  if p=$(python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])' 2>/dev/null) && [ -n "$p" ]; then
    printf '%s\n' "$p"
    return 0
  fi
  # No python3: try random high ports until one refuses connections.
  local i
  for i in $(seq 1 100); do
    p=$(( 20000 + RANDOM % 40000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      printf '%s\n' "$p"
      return 0
    fi
  done
  return 1
}

sb_make_tmp() {
  # Under /tmp, not $TMPDIR: the PG user must be able to reach it, and the
  # Unix socket path must stay short (< 108 bytes).
  SB_TMP=$(mktemp -d /tmp/switchboard-test.XXXXXX)
  chmod 0755 "$SB_TMP"
}

# sb_pg_run runs a command as the cluster's OS user, from inside SB_TMP (so the
# unprivileged user never starts in a directory it cannot read).
sb_pg_run() {
  if [ "$SB_PG_OSUSER" = "$(id -un)" ]; then
    (cd "$SB_TMP" && "$@")
  else
    (cd "$SB_TMP" && runuser -u "$SB_PG_OSUSER" -- "$@")
  fi
}

# sb_start_postgres initialises a throwaway cluster in SB_TMP/pg (trust auth,
# 127.0.0.1 only, fsync off), starts it on a free port, creates the database
# switchboard_test, and exports TEST_DATABASE_URL and TEST_PG_ADMIN_URL.
sb_start_postgres() {
  local data="$SB_TMP/pg" attempt
  # PostgreSQL refuses to run as root: use a dedicated system user.
  if sb_is_root; then
    SB_PG_OSUSER=sbtest
    if ! getent passwd "$SB_PG_OSUSER" >/dev/null; then
      useradd --system --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin "$SB_PG_OSUSER" || sb_die "useradd $SB_PG_OSUSER failed"
    fi
  else
    SB_PG_OSUSER=$(id -un)
  fi
  mkdir -p "$data"
  chmod 0700 "$data"
  [ "$SB_PG_OSUSER" = "$(id -un)" ] || chown "$SB_PG_OSUSER" "$data"

  sb_pg_run "$SB_PG_BIN/initdb" -D "$data" -U "$SB_PG_ROLE" -E UTF8 --no-locale \
    --auth-local=trust --auth-host=trust --no-sync >"$SB_TMP/initdb.log" 2>&1 \
    || { cat "$SB_TMP/initdb.log" >&2; sb_die "initdb failed"; }
  cat >>"$data/postgresql.conf" <<EOF

# switchboard throwaway test cluster
listen_addresses = '127.0.0.1'
unix_socket_directories = '$data'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
EOF

  local isready psql
  isready=$(sb_pg_tool pg_isready) || sb_die "pg_isready not found"
  psql=$(sb_pg_tool psql) || sb_die "psql not found"
  # postgres runs in the foreground as this shell's child (not daemonised by
  # pg_ctl start), so that `wait` reaps it and no zombie is left behind.
  local i
  for attempt in 1 2 3; do
    SB_PG_PORT=$(sb_free_port) || sb_die "no free port"
    if [ "$SB_PG_OSUSER" = "$(id -un)" ]; then
      (cd "$SB_TMP" && exec "$SB_PG_BIN/postgres" -D "$data" -p "$SB_PG_PORT") \
        </dev/null >>"$SB_TMP/pg.log" 2>&1 &
    else
      (cd "$SB_TMP" && exec runuser -u "$SB_PG_OSUSER" -- "$SB_PG_BIN/postgres" -D "$data" -p "$SB_PG_PORT") \
        </dev/null >>"$SB_TMP/pg.log" 2>&1 &
    fi
    SB_PG_PID=$!
    for ((i = 0; i < 60; i++)); do  # up to 30 s, unless postgres exits
      if "$isready" -q -h 127.0.0.1 -p "$SB_PG_PORT" -U "$SB_PG_ROLE" -d postgres </dev/null >/dev/null 2>&1; then
        SB_PG_STARTED=1
        break
      fi
      kill -0 "$SB_PG_PID" 2>/dev/null || break
      sleep 0.5
    done
    [ -z "$SB_PG_STARTED" ] || break
    sb_log "postgres failed to start on port $SB_PG_PORT (attempt $attempt):"
    tail -n 20 "$SB_TMP/pg.log" >&2 || true
    sb_stop_postgres
  done
  [ -n "$SB_PG_STARTED" ] || sb_die "could not start postgres"

  export TEST_PG_ADMIN_URL="postgres://$SB_PG_ROLE@127.0.0.1:$SB_PG_PORT/postgres?sslmode=disable"
  export TEST_DATABASE_URL="postgres://$SB_PG_ROLE@127.0.0.1:$SB_PG_PORT/switchboard_test?sslmode=disable"
  "$psql" "$TEST_PG_ADMIN_URL" -v ON_ERROR_STOP=1 -qAt -c 'CREATE DATABASE switchboard_test' </dev/null >/dev/null \
    || sb_die "CREATE DATABASE switchboard_test failed"
  sb_log "postgres $("$SB_PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$SB_PG_PORT (role $SB_PG_ROLE, superuser)"
}

# sb_start_redis starts redis-server on a free 127.0.0.1 port with no
# persistence, and exports TEST_REDIS_URL and TEST_REDIS_SERVER.
sb_start_redis() {
  local dir="$SB_TMP/redis" attempt server
  server=$(command -v redis-server) || sb_die "redis-server not found"
  mkdir -p "$dir"
  for attempt in 1 2 3; do
    SB_REDIS_PORT=$(sb_free_port) || sb_die "no free port"
    "$server" --bind 127.0.0.1 --port "$SB_REDIS_PORT" --save "" --appendonly no \
      --dir "$dir" --daemonize no --protected-mode yes --logfile "$dir/redis.log" \
      </dev/null >/dev/null 2>&1 &
    SB_REDIS_PID=$!
    local i ok=""
    for ((i = 0; i < 60; i++)); do  # up to 30 s, unless redis-server exits
      if redis-cli -h 127.0.0.1 -p "$SB_REDIS_PORT" ping </dev/null 2>/dev/null | grep -q PONG; then
        ok=1
        break
      fi
      kill -0 "$SB_REDIS_PID" 2>/dev/null || break
      sleep 0.5
    done
    [ -z "$ok" ] || break
    sb_log "redis failed to start on port $SB_REDIS_PORT (attempt $attempt):"
    tail -n 20 "$dir/redis.log" >&2 || true
    sb_stop_redis
  done
  [ -n "$SB_REDIS_PID" ] || sb_die "could not start redis"
  export TEST_REDIS_URL="redis://127.0.0.1:$SB_REDIS_PORT/0"
  export TEST_REDIS_SERVER="$server"
  sb_log "redis $("$server" --version | awk '{sub(/^v=/, "", $3); print $3}') on 127.0.0.1:$SB_REDIS_PORT"
}

sb_stop_redis() {
  [ -n "$SB_REDIS_PID" ] || return 0
  if kill -0 "$SB_REDIS_PID" 2>/dev/null; then
    kill -TERM "$SB_REDIS_PID" 2>/dev/null || true
    local i
    for i in $(seq 1 50); do
      kill -0 "$SB_REDIS_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$SB_REDIS_PID" 2>/dev/null || true
  fi
  wait "$SB_REDIS_PID" 2>/dev/null || true
  SB_REDIS_PID=""
}

sb_stop_postgres() {
  [ -n "$SB_PG_PID" ] || return 0
  local data="$SB_TMP/pg" i pid
  if [ -f "$data/postmaster.pid" ]; then
    sb_pg_run "$SB_PG_BIN/pg_ctl" -D "$data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
  fi
  for ((i = 0; i < 50; i++)); do
    kill -0 "$SB_PG_PID" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$SB_PG_PID" 2>/dev/null; then
    pid=$(head -n 1 "$data/postmaster.pid" 2>/dev/null || true)
    if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; fi
    kill -KILL "$SB_PG_PID" 2>/dev/null || true
  fi
  wait "$SB_PG_PID" 2>/dev/null || true
  SB_PG_PID=""
  SB_PG_STARTED=""
}

# sb_run runs a command in its own session and process group and waits for it.
# Waiting on a background child keeps the script's INT/TERM traps responsive,
# and sb_cleanup can then end the whole group (go, test binaries, anything a
# test started without its own group) instead of leaving it running.
sb_run() {
  local rc=0
  setsid "$@" </dev/null &
  SB_CHILD=$!
  wait "$SB_CHILD" || rc=$?
  SB_CHILD=""
  return "$rc"
}

sb_stop_child() {
  [ -n "$SB_CHILD" ] || return 0
  local i
  kill -TERM -- "-$SB_CHILD" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    kill -0 -- "-$SB_CHILD" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL -- "-$SB_CHILD" 2>/dev/null || true
  wait "$SB_CHILD" 2>/dev/null || true
  SB_CHILD=""
}

# sb_cleanup stops what was started and removes SB_TMP. Safe to call twice.
sb_cleanup() {
  sb_stop_child
  sb_stop_redis
  sb_stop_postgres
  if [ -n "$SB_TMP" ] && [ -d "$SB_TMP" ]; then
    rm -rf "$SB_TMP"
  fi
  SB_TMP=""
}

# sb_compose_check validates docker-compose.yml (if present) with Debian's
# docker-compose. Without .env (a fresh clone) it checks against .env.example:
# in a temp dir of symlinks to the repo's top-level entries plus a copy of
# .env.example named .env, so that both ${VAR} interpolation and a service's
# `env_file: .env` see it, and build contexts and bind mounts still resolve.
# Returns 0 when valid or when it cannot check (then it says why).
sb_compose_check() {
  local root=$1 dir entry
  [ -f "$root/docker-compose.yml" ] || return 0
  SB_COMPOSE=$(command -v docker-compose 2>/dev/null || true)
  if [ -z "$SB_COMPOSE" ]; then
    sb_log "WARNING: docker-compose not installed; docker-compose.yml not checked"
    return 0
  fi
  dir=$root
  if [ ! -f "$root/.env" ] && [ -f "$root/.env.example" ]; then
    dir="$SB_TMP/compose"
    mkdir -p "$dir"
    for entry in "$root"/* "$root"/.[!.]* "$root"/..?*; do
      [ -e "$entry" ] || continue
      ln -s "$entry" "$dir/$(basename "$entry")"
    done
    cp "$root/.env.example" "$dir/.env"
    sb_log "no .env: checking docker-compose.yml with .env.example as .env"
  fi
  sb_log "docker-compose -f docker-compose.yml config -q"
  sb_run "$SB_COMPOSE" -f "$dir/docker-compose.yml" --project-directory "$dir" config -q
}
