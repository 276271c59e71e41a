#!/usr/bin/env bash
# Runs berth from the checkout with a recent enough Node, installing Node 24
# into .tools/ first when the machine's is older (see scripts/toolchain.sh).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$root/scripts/toolchain.sh"
exec node "$root/bin/berth.js" "$@"
