#!/usr/bin/env bash
# Install Debian's chromium for the web interface's browser tests, when it is missing (Playwright cannot
# download its own browsers here). Idempotent; needs root or passwordless sudo.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
echo "browser: installing Debian's chromium (about 90 s)"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y -q chromium >/dev/null 2>&1 || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q chromium >/dev/null; }
command -v chromium >/dev/null
