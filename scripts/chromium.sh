#!/usr/bin/env bash
# Installs Debian's chromium for the browser tests (the /connect page) when it
# is missing. Needs root and apt-get; exit non-zero with the reason otherwise,
# and the browser tests skip, saying so.
set -uo pipefail
[ -x /usr/bin/chromium ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "chromium: /usr/bin/chromium is missing and cannot be installed (needs root and apt-get)" >&2
  exit 1
fi
echo "chromium: installing Debian's chromium" >&2
(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >&2 || {
  echo "chromium: apt-get install chromium failed" >&2
  exit 1
}
