#!/usr/bin/env bash
# A real `helm` for checking deploy/helm/berth, built from helm.sh/helm/v4 at the
# release pinned in scripts/helm/go.mod, once, cached in ~/.cache/berth/helm-<version>/
# (outside the clone, like scripts/cluster.sh's binaries):
#   scripts/helm.sh build        only builds; prints the binary's path
#   scripts/helm.sh ARGS...      runs helm ARGS (building first when needed)
# Progress goes to stderr.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
module="$root/scripts/helm"
version="$(awk '$1 == "require" && $2 == "helm.sh/helm/v4" { print $3 }' "$module/go.mod")"
[ -n "$version" ] || { echo "helm: no helm.sh/helm/v4 version in $module/go.mod" >&2; exit 1; }
dir="${BERTH_CLUSTER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/berth}/helm-$version"
exe="$dir/helm"

build() {
  [ -x "$exe" ] && return 0
  command -v go >/dev/null 2>&1 || { echo "helm: go is not installed; it builds helm" >&2; return 1; }
  mkdir -p "$dir"
  exec 8>"$dir/.lock"
  flock 8
  [ -x "$exe" ] && return 0
  echo "helm: building helm $version into $dir (cold: several minutes on 2 cores)" >&2
  local start=$SECONDS tmp ldflags pkg=helm.sh/helm/v4/internal/version
  tmp="$(mktemp -d "$dir/.build.XXXXXX")"
  # The version stamp makes `helm version` name the release, as a release build does.
  ldflags="-s -w -X $pkg.version=$version"
  # -trimpath as scripts/cluster.sh builds: the k8s.io packages both share come from Go's build cache.
  (cd "$module" && nice -n 10 go build -trimpath -ldflags "$ldflags" -o "$tmp/helm" helm.sh/helm/v4/cmd/helm) >&2
  mv "$tmp/helm" "$exe"
  rm -rf "$tmp"
  echo "helm: built in $((SECONDS - start)) s" >&2
}

build
if [ "${1:-}" = build ]; then
  echo "$exe"
  exit 0
fi
# No user's Helm settings, repositories or plugins: only the chart named on the command line.
export HELM_CONFIG_HOME="$dir/config" HELM_CACHE_HOME="$dir/cache" HELM_DATA_HOME="$dir/data"
exec "$exe" "$@"
