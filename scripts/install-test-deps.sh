#!/usr/bin/env bash
# Installs the Debian packages okrd's build and tests need, when they are
# missing (scripts/test runs it):
#   libssl-dev pkg-config zlib1g-dev  librdkafka's build (SSL/SASL, zlib)
#   chromium                          headless browser for the status page tests
#   prometheus                        promtool, to check the /metrics output
#   prometheus-alertmanager           alertmanager and amtool, for the alert tests
#   openssl                           certificates for the TLS tests
#   stunnel4                          TLS in front of Kafka's mock broker and a webhook
#   python3-aiosmtpd                  an SMTP relay with STARTTLS and AUTH
#   mariadb-server                    the MySQL source of the `sql` connector tests
# (PostgreSQL: scripts/ensure-postgres.sh.) Idempotent and silent when
# everything is already there. Needs root (or sudo).
set -euo pipefail

packages=(libssl-dev pkg-config zlib1g-dev chromium prometheus prometheus-alertmanager
  openssl stunnel4 python3-aiosmtpd mariadb-server)

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

missing=()
for pkg in "${packages[@]}"; do
  if ! installed "$pkg"; then
    missing+=("$pkg")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  sudo=(sudo)
fi

echo "install-test-deps: installing ${missing[*]}" >&2
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
  "${missing[@]}" >/dev/null

# The distribution services must not run on their own on a test machine:
# the tests start their own instances on free ports.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  "${sudo[@]}" systemctl disable --now prometheus prometheus-alertmanager \
    prometheus-node-exporter stunnel4 >/dev/null 2>&1 || true
fi

for pkg in "${missing[@]}"; do
  if ! installed "$pkg"; then
    echo "install-test-deps: $pkg did not install" >&2
    exit 1
  fi
done
