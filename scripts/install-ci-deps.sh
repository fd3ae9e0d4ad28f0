#!/usr/bin/env bash
# Installs what the tests need beyond cargo: Chromium, for tests/report_browser.rs (headless
# screenshot of report.html). Non-interactive; does nothing if /usr/bin/chromium is present.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
    echo "chromium: present ($(/usr/bin/chromium --version 2>/dev/null || echo unknown version))"
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends chromium
/usr/bin/chromium --version
