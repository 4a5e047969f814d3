#!/bin/sh
# What the test suite needs beyond requirements.txt, made present before any test runs (`make test`).
#
# Chromium: tests/test_plots_offline.py renders DVC's plots pages headless. It is a system package, so
# pip cannot install it: as root (or with password-less sudo) on Debian/Ubuntu this installs it with
# apt-get; anywhere else it stops at once with the one command to run. CHROMIUM=/path/to/chromium
# names a browser installed elsewhere.
set -u

INSTRUCTION="sudo apt-get update && sudo apt-get install -y --no-install-recommends chromium (Debian/Ubuntu), or set CHROMIUM=/path/to/chromium"

fail() {
    echo "make test: $1; install it, then run make test again: $INSTRUCTION" >&2
    exit 1
}

found() {
    if [ -n "${CHROMIUM:-}" ]; then
        [ -x "$CHROMIUM" ] || fail "CHROMIUM=$CHROMIUM is not an executable file"
        return 0
    fi
    command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1
}

found && exit 0

command -v apt-get >/dev/null 2>&1 || fail "Chromium (for tests/test_plots_offline.py) is not installed and apt-get is not available"
if [ "$(id -u)" = 0 ]; then
    sudo=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo="sudo -n"
else
    fail "Chromium (for tests/test_plots_offline.py) is not installed and installing it needs root"
fi

echo "make test: installing Chromium with apt-get (tests/test_plots_offline.py renders the plots pages in it)..."
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq || fail "apt-get update failed"
# Debian names the package chromium; Ubuntu's is chromium-browser.
$sudo apt-get install -y -qq --no-install-recommends chromium \
    || $sudo apt-get install -y -qq --no-install-recommends chromium-browser \
    || fail "apt-get could not install Chromium"
found || fail "apt-get finished but no chromium command is on PATH"
echo "make test: Chromium installed: $(chromium --version 2>/dev/null || chromium-browser --version 2>/dev/null)"
