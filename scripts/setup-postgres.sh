#!/usr/bin/env bash
# Installs what the PostgreSQL tests need on a Debian machine: the server programs (initdb,
# pg_ctl, postgres, psql) from Debian's `postgresql` package, which also creates the `postgres`
# system user the tests run the server as when they run as root. Idempotent; .ci/run calls it,
# and platform::testing::PgServer calls it when the programs are missing.
set -euo pipefail
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null; then
  echo "setup-postgres: PostgreSQL is installed"
  exit 0
fi
if [ "$(id -u)" = 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql
else
  echo "setup-postgres: PostgreSQL is missing; run 'apt-get install postgresql' as root" >&2
  exit 1
fi
echo "setup-postgres: PostgreSQL is installed"
