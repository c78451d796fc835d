#!/usr/bin/env bash
# Set up a virtualenv, check style and types, and run the suite on SQLite; then again on
# PostgreSQL when TAJIRI_TEST_DATABASE_URL is set (in CI it defaults to the local server).
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'

# The official Pusher JavaScript clients, pinned by tests/js/package-lock.json.
if command -v npm >/dev/null; then
  (cd tests/js && npm ci --no-audit --no-fund --silent)
fi

.venv/bin/ruff check src tests bench
.venv/bin/ruff format --check src tests bench
.venv/bin/mypy

run_pytest() {
  local label=$1; shift
  echo "== tests on ${label} =="
  set +e
  .venv/bin/pytest "$@"
  local code=$?
  set -e
  if [ "$code" -eq 5 ]; then
    echo "no tests were collected on ${label}: treating that as a failure" >&2
    return 1
  fi
  return "$code"
}

if [ "${CI:-}" = "true" ]; then
  export TAJIRI_TEST_DATABASE_URL="${TAJIRI_TEST_DATABASE_URL:-postgresql+asyncpg://postgres@127.0.0.1:5432/test}"
  export TAJIRI_TEST_REDIS_URL="${TAJIRI_TEST_REDIS_URL:-redis://127.0.0.1:6379/0}"
  # The Sanctum tests create Laravel-shaped main app databases on both kinds of server.
  export TAJIRI_TEST_MAINAPP_POSTGRES_URL="${TAJIRI_TEST_MAINAPP_POSTGRES_URL:-postgresql+asyncpg://postgres@127.0.0.1:5432/test}"
  export TAJIRI_TEST_MAINAPP_MYSQL_URL="${TAJIRI_TEST_MAINAPP_MYSQL_URL:-mysql+asyncmy://root@127.0.0.1:3306/test}"
fi

pg_url="${TAJIRI_TEST_DATABASE_URL:-}"
if [ -n "$pg_url" ]; then
  # The two runs share nothing (each test makes its own database and Redis key prefix) and
  # spend much of their time starting servers and waiting on them: they run side by side,
  # PostgreSQL's output shown when it ends.
  pg_log="$(mktemp)"
  (TAJIRI_TEST_DATABASE_URL="$pg_url" run_pytest "PostgreSQL" -q "$@" >"$pg_log" 2>&1) &
  pg_pid=$!
fi
sqlite_code=0
TAJIRI_TEST_DATABASE_URL="" run_pytest "SQLite" -q "$@" || sqlite_code=$?
if [ -n "$pg_url" ]; then
  pg_code=0
  wait "$pg_pid" || pg_code=$?
  cat "$pg_log"
  rm -f "$pg_log"
  if [ "$pg_code" -ne 0 ]; then
    exit "$pg_code"
  fi
fi
if [ "$sqlite_code" -ne 0 ]; then
  exit "$sqlite_code"
fi

# The benchmarks as short smokes: they must run and check their results, not meet the bars.
if [ -n "${TAJIRI_TEST_REDIS_URL:-}" ]; then
  echo "== fan-out benchmark smoke =="
  TAJIRI_BENCH_REDIS_URL="$TAJIRI_TEST_REDIS_URL" .venv/bin/python bench/fanout.py --quick
  echo "== analytics benchmark smoke =="
  .venv/bin/python bench/analytics.py --quick
  echo "== notifications benchmark smoke =="
  .venv/bin/python bench/notifications.py --quick
  echo "== identity benchmark smoke =="
  .venv/bin/python bench/identity.py --quick
  echo "== hostile clients benchmark smoke =="
  TAJIRI_BENCH_REDIS_URL="$TAJIRI_TEST_REDIS_URL" .venv/bin/python bench/hostile.py --quick
  echo "== engagement benchmark smoke =="
  TAJIRI_BENCH_REDIS_URL="$TAJIRI_TEST_REDIS_URL" .venv/bin/python bench/engagement.py --quick
  echo "== hot paths benchmark smoke =="
  TAJIRI_BENCH_REDIS_URL="$TAJIRI_TEST_REDIS_URL" .venv/bin/python bench/hotpaths.py --quick
  TAJIRI_BENCH_REDIS_URL="$TAJIRI_TEST_REDIS_URL" .venv/bin/python bench/hotpaths.py --quick \
    --load-client aiohttp
  echo "== polls benchmark smoke =="
  TAJIRI_BENCH_REDIS_URL="$TAJIRI_TEST_REDIS_URL" .venv/bin/python bench/polls.py --quick
  echo "== battles benchmark smoke =="
  TAJIRI_BENCH_REDIS_URL="$TAJIRI_TEST_REDIS_URL" .venv/bin/python bench/battles.py --quick
  if command -v nginx >/dev/null && command -v ffmpeg >/dev/null; then
    echo "== ingest benchmark smoke =="
    .venv/bin/python bench/ingest.py --quick
  fi
fi
