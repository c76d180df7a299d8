#!/usr/bin/env bash
# Installs what the browser end-to-end test (crates/seed/tests/browser_e2e.rs,
# web/e2e/chat.mjs) needs on a Debian machine: Chromium from Debian's packages
# and playwright-core from npm at the version pinned in web/e2e/package-lock.json.
# Idempotent; .ci/run calls it, and the test calls it when something is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
  else
    echo "setup-browser-test: /usr/bin/chromium is missing; run 'apt-get install chromium' as root" >&2
    exit 1
  fi
fi
if [ ! -f web/e2e/node_modules/playwright-core/package.json ]; then
  (cd web/e2e && npm ci --no-audit --no-fund --silent)
fi
echo "setup-browser-test: chromium and playwright-core are ready"
