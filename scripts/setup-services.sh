#!/usr/bin/env bash
# Installs the servers the scale-out tests run for real, from Debian's packages: PostgreSQL
# (initdb, pg_ctl, postgres, psql; the package also creates the `postgres` system user the tests
# run the server as when they run as root) and HAProxy. Idempotent; .ci/run calls it, and
# platform::testing calls it when a program is missing.
set -euo pipefail
missing=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || missing+=(postgresql)
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup-services: PostgreSQL and HAProxy are installed"
  exit 0
fi
if [ "$(id -u)" = 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
else
  echo "setup-services: missing ${missing[*]}; run 'apt-get install ${missing[*]}' as root" >&2
  exit 1
fi
echo "setup-services: installed ${missing[*]}"
