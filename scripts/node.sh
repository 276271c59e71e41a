#!/usr/bin/env bash
# Runs node with a recent enough version for this checkout, installing Node 24
# into .tools/ first when the machine's is older (see scripts/toolchain.sh).
# npm start and npm test go through it, so both work on a machine with Node 20.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$root/scripts/toolchain.sh"
exec node "$@"
