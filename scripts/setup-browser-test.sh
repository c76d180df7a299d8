#!/usr/bin/env bash
# Installs what the browser end-to-end test (crates/seed/tests/browser_e2e.rs,
# web/e2e/chat.mjs) needs on a Debian machine: Chromium and a CJK font from Debian's packages
# and playwright-core and axe-core from npm at the versions pinned in web/e2e/package-lock.json.
# Idempotent; .ci/run calls it, and the test calls it when something is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
# A CJK font, so the Chinese edition's page (and its screenshot) shows its characters.
packages=()
[ -x /usr/bin/chromium ] || packages+=(chromium)
[ -f /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || packages+=(fonts-wqy-microhei)
if [ ${#packages[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}"
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}"
  else
    echo "setup-browser-test: ${packages[*]} missing; run 'apt-get install ${packages[*]}' as root" >&2
    exit 1
  fi
fi
if [ ! -f web/e2e/node_modules/playwright-core/package.json ] || [ ! -f web/e2e/node_modules/axe-core/axe.min.js ]; then
  (cd web/e2e && npm ci --no-audit --no-fund --silent)
fi
echo "setup-browser-test: chromium, a CJK font, playwright-core and axe-core are ready"
