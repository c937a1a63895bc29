#!/usr/bin/env bash
# Make the PostgreSQL of HEADWATER_TEST_POSTGRES_URL answer, starting a local cluster if one is
# installed but stopped. Under CI a PostgreSQL that cannot be had fails the run; on a user's
# machine the PostgreSQL tests are skipped with one clear line instead.
set -u
url="${HEADWATER_TEST_POSTGRES_URL:-postgresql://postgres@127.0.0.1:5432/test}"
if pg_isready -q -d "$url" 2>/dev/null; then exit 0; fi
if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
  for version in $(ls /etc/postgresql); do
    pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null || true
  done
  for _ in $(seq 1 20); do pg_isready -q -d "$url" 2>/dev/null && exit 0; sleep 0.5; done
fi
if [ -n "${CI:-}" ]; then
  echo "PostgreSQL at $url is not reachable and could not be started: CI needs it." >&2
  exit 1
fi
echo "PostgreSQL at $url is not reachable: its tests will be skipped." >&2
exit 0
