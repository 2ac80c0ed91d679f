#!/usr/bin/env bash
# Makes sure the PostgreSQL the tests use answers at 127.0.0.1:5432 with a
# `postgres` role that may create databases. Installs and starts the Debian
# package when the machine has none (tests point OKRD_TEST_POSTGRES_URL
# elsewhere to use another server, or set OKRD_TEST_SKIP_POSTGRES=1).
set -euo pipefail

if [ "${OKRD_TEST_SKIP_POSTGRES:-}" = 1 ] || [ -n "${OKRD_TEST_POSTGRES_URL:-}" ]; then
  exit 0
fi
ready() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
if ready; then exit 0; fi

if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  echo "PostgreSQL is not installed: installing Debian's postgresql" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
version=$(ls /etc/postgresql | sort -V | tail -n 1)
pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
for _ in $(seq 1 30); do
  if ready; then break; fi
  sleep 1
done
ready || { echo "PostgreSQL did not start" >&2; exit 1; }
# Trust auth for local TCP connections, as the machine's own setup has it.
if ! psql -h 127.0.0.1 -U postgres -d postgres -Atc 'select 1' >/dev/null 2>&1; then
  hba=$(su postgres -c "psql -Atc 'show hba_file'")
  sed -i -E 's/^(host\s+all\s+all\s+127\.0\.0\.1\/32\s+)\S+/\1trust/' "$hba"
  su postgres -c "psql -Atc 'select pg_reload_conf()'" >/dev/null
fi
