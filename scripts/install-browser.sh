#!/usr/bin/env bash
# Installs Debian's Chromium for the dashboard's browser tests (Playwright drives it through
# executable_path; no browser is ever downloaded by Playwright itself).
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
# A fresh machine has no package lists yet; a failed install retries once after an update.
if ! $SUDO apt-get install -y chromium; then
    $SUDO apt-get update
    $SUDO apt-get install -y chromium
fi
