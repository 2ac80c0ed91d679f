#!/usr/bin/env bash
# Makes sure the PostgreSQL the tests use answers at 127.0.0.1:5432 (and as
# localhost) with a `postgres` role that may create databases, and speaks
# TLS with Debian's snakeoil certificate (CN localhost), which the TLS tests
# verify against. Installs and starts the Debian package when the machine
# has none (tests point OKRD_TEST_POSTGRES_URL elsewhere to use another
# server, or set OKRD_TEST_SKIP_POSTGRES=1).
set -euo pipefail

if [ "${OKRD_TEST_SKIP_POSTGRES:-}" = 1 ] || [ -n "${OKRD_TEST_POSTGRES_URL:-}" ]; then
  exit 0
fi
ready() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
as_postgres() { su postgres -c "psql -Atq -c \"$1\""; }

if ! ready; then
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
fi

# Trust auth for local TCP connections (IPv4 and IPv6 loopback, as
# `localhost` may resolve to either), as the machine's own setup has it.
hba=$(as_postgres 'show hba_file')
changed=
for net in '127\.0\.0\.1/32' '::1/128'; do
  if grep -Eq "^host\s+all\s+all\s+$net\s+" "$hba" && ! grep -Eq "^host\s+all\s+all\s+$net\s+trust" "$hba"; then
    sed -i -E "s/^(host\s+all\s+all\s+$net\s+)\S+/\1trust/" "$hba"
    changed=1
  fi
done
if ! grep -Eq '^host\s+all\s+all\s+::1/128' "$hba"; then
  echo 'host all all ::1/128 trust' >> "$hba"
  changed=1
fi

# TLS: Debian's cluster has it on, with the snakeoil certificate.
if [ "$(as_postgres 'show ssl')" != on ]; then
  if [ ! -f /etc/ssl/certs/ssl-cert-snakeoil.pem ]; then
    command -v make-ssl-cert >/dev/null 2>&1 ||
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ssl-cert >/dev/null
    make-ssl-cert generate-default-snakeoil
  fi
  as_postgres "ALTER SYSTEM SET ssl_cert_file = '/etc/ssl/certs/ssl-cert-snakeoil.pem'" >/dev/null
  as_postgres "ALTER SYSTEM SET ssl_key_file = '/etc/ssl/private/ssl-cert-snakeoil.key'" >/dev/null
  as_postgres 'ALTER SYSTEM SET ssl = on' >/dev/null
  changed=1
fi
if [ -n "$changed" ]; then
  as_postgres 'select pg_reload_conf()' >/dev/null
  sleep 1
fi
[ "$(as_postgres 'show ssl')" = on ] || { echo "PostgreSQL: could not turn TLS on" >&2; exit 1; }
psql -h 127.0.0.1 -U postgres -d postgres -Atqc 'select 1' >/dev/null ||
  { echo "PostgreSQL: user postgres cannot log in over 127.0.0.1" >&2; exit 1; }
