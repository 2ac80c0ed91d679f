#!/usr/bin/env bash
# Installs the Debian packages okrd's tests need, when they are missing:
#   chromium                 headless browser for the status page tests
#   prometheus               promtool, to check the /metrics output
#   prometheus-alertmanager  alertmanager and amtool, for the alert tests
# Idempotent and silent when everything is already there. Needs root (or sudo).
set -euo pipefail

# package -> a command it provides, used to tell whether it is installed
declare -A provides=(
  [chromium]=chromium
  [prometheus]=promtool
  [prometheus-alertmanager]=amtool
)

missing=()
for pkg in chromium prometheus prometheus-alertmanager; do
  if ! command -v "${provides[$pkg]}" >/dev/null 2>&1; then
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
    prometheus-node-exporter >/dev/null 2>&1 || true
fi

for pkg in "${missing[@]}"; do
  if ! command -v "${provides[$pkg]}" >/dev/null 2>&1; then
    echo "install-test-deps: $pkg installed but ${provides[$pkg]} is not on PATH" >&2
    exit 1
  fi
done
