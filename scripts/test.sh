#!/usr/bin/env bash
# test.sh: the project's one test command, for CI (.ci/run) and developers.
#
#   scripts/test.sh                     # go vet ./... + go test -race ./...
#   scripts/test.sh -run TestHub ./ws/  # arguments replace ./... for go test
#
# It installs what is missing with apt-get (PostgreSQL, redis-server, chromium,
# docker-compose, gcc), starts a throwaway PostgreSQL and redis-server on free
# 127.0.0.1 ports in a temp dir, exports
#   TEST_DATABASE_URL  postgres://postgres@127.0.0.1:PORT/switchboard_test?sslmode=disable
#   TEST_PG_ADMIN_URL  same server, database "postgres" (role is a superuser)
#   TEST_REDIS_URL     redis://127.0.0.1:PORT/0
#   TEST_REDIS_SERVER  path of redis-server (for tests that run their own)
#   TEST_CHROMIUM      /usr/bin/chromium, when installed
# then runs go vet, checks docker-compose.yml, runs go test, and on exit stops
# both servers and removes the temp dir. Exits non-zero if any step failed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source-path=SCRIPTDIR/..
. "$ROOT/scripts/lib/services.sh"

export PATH="/usr/local/go/bin:$PATH"
if [ -z "${HOME:-}" ]; then
  HOME=$(getent passwd "$(id -un)" | cut -d: -f6)
  export HOME
fi

trap sb_cleanup EXIT
trap 'sb_log "interrupted"; exit 130' INT
trap 'sb_log "terminated"; exit 143' TERM

command -v go >/dev/null 2>&1 || sb_die "go not found (expected /usr/local/go/bin/go)"
sb_ensure_packages
sb_make_tmp
sb_start_postgres
sb_start_redis
if [ -x /usr/bin/chromium ]; then
  export TEST_CHROMIUM=/usr/bin/chromium
else
  sb_log "WARNING: /usr/bin/chromium not found; browser tests will skip"
fi

cd "$ROOT"
go version

vet_rc=0
sb_log "go vet ./..."
sb_run go vet ./... || vet_rc=$?

compose_rc=0
sb_compose_check "$ROOT" || compose_rc=$?
[ "$compose_rc" -eq 0 ] || sb_log "docker-compose.yml check FAILED (exit $compose_rc)"

pkgs=(./...)
[ "$#" -eq 0 ] || pkgs=("$@")
test_rc=0
sb_log "go test -race -count=1 -timeout 40m ${pkgs[*]}"
sb_run go test -race -count=1 -timeout 40m "${pkgs[@]}" || test_rc=$?

[ "$vet_rc" -eq 0 ] || sb_log "go vet FAILED (exit $vet_rc)"
if [ "$test_rc" -ne 0 ]; then
  sb_log "go test FAILED (exit $test_rc)"
  exit "$test_rc"
fi
if [ "$vet_rc" -ne 0 ] || [ "$compose_rc" -ne 0 ]; then
  exit 1
fi
sb_log "all passed"
