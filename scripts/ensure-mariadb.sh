#!/usr/bin/env bash
# Makes sure the MariaDB the `sql` connector's MySQL tests use answers at
# 127.0.0.1:3306 as root with an empty password, and speaks TLS with
# Debian's snakeoil certificate (CN localhost). Starts it (installing
# mariadb-server first when missing); turning TLS on restarts it once.
# OKRD_TEST_MYSQL_URL points the tests at another server instead.
set -euo pipefail

if [ -n "${OKRD_TEST_MYSQL_URL:-}" ]; then
  exit 0
fi
q() { mariadb -h 127.0.0.1 -P 3306 -u root -N -B -e "$1" 2>/dev/null; }
up() { q 'select 1' >/dev/null; }
wait_up() {
  for _ in $(seq 1 30); do
    if up; then return 0; fi
    sleep 1
  done
  echo "MariaDB did not start at 127.0.0.1:3306" >&2
  exit 1
}
# (Re)starts the server. The machine's own may have been started by other
# means than its init script, which then cannot stop it: shut it down
# through the server itself first.
restart() {
  if up; then
    mariadb-admin -h 127.0.0.1 -P 3306 -u root shutdown
    for _ in $(seq 1 30); do
      if ! up; then break; fi
      sleep 1
    done
  fi
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl start mariadb
  else
    service mariadb start >/dev/null 2>&1 ||
      (setsid mariadbd-safe >/dev/null 2>&1 < /dev/null &)
  fi
  wait_up
}

if ! command -v mariadbd >/dev/null 2>&1; then
  echo "MariaDB is not installed: installing Debian's mariadb-server" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server >/dev/null
fi
if ! up; then
  restart
fi

if [ "$(q "select @@have_ssl")" != YES ]; then
  # The server reads its certificate as the mysql user: a copy of its own.
  dir=/etc/mysql/okrd-test-tls
  mkdir -p "$dir"
  cp /etc/ssl/certs/ssl-cert-snakeoil.pem "$dir/cert.pem"
  cp /etc/ssl/private/ssl-cert-snakeoil.key "$dir/key.pem"
  chown -R mysql:mysql "$dir"
  chmod 600 "$dir/key.pem"
  conf=/etc/mysql/my.cnf
  if ! grep -q "$dir" "$conf"; then
    printf '\n# okrd tests (scripts/ensure-mariadb.sh): TLS\n[mysqld]\nssl_cert = %s/cert.pem\nssl_key = %s/key.pem\n' \
      "$dir" "$dir" >> "$conf"
  fi
  restart
  [ "$(q "select @@have_ssl")" = YES ] || { echo "MariaDB: could not turn TLS on" >&2; exit 1; }
fi
