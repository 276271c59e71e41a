#!/usr/bin/env bash
# Builds the images the Docker tests and bench use, without any registry:
#   BASE_IMAGE          `docker import` of a root filesystem holding this machine's
#                       node binary, the libraries ldd lists and an unprivileged user
#   BERTH_IMAGE         berth's own Dockerfile on BASE_IMAGE
#   TEST_RUNTIME_IMAGE  BERTH_IMAGE plus the MCP test fixture (stdio servers run behind berth bridge)
#   TEST_HTTP_IMAGE     the MCP test fixture serving streamable HTTP on $PORT
# Every tag carries a hash of its inputs, so a repeated run reuses what exists.
# Prints KEY=tag lines on stdout; progress goes to stderr.
# `scripts/docker-images.sh base` builds and prints only BASE_IMAGE;
# `scripts/docker-images.sh clean` removes every image and cache it made.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${TMPDIR:-/tmp}/berth-docker-images"
. "$root/scripts/toolchain.sh" >&2

if [ "${1:-}" = clean ]; then
  docker images --format '{{.Repository}}:{{.Tag}}' | grep -E '^berth-(base|image|test-runtime|test-http):' | xargs -r docker rmi >&2 || true
  rm -rf "$cache"
  exit 0
fi
mkdir -p "$cache"
# Test files run in parallel and may all ask at once: one builds, the others wait and reuse.
exec 9>"$cache/.lock"
flock 9
have_image() { docker image inspect "$1" >/dev/null 2>&1; }
hash_of() { sha256sum | cut -c1-16; }

# 1. The base: node and its libraries, nothing else.
node_bin="$(command -v node)"
libs="$(ldd "$node_bin" | grep -oE '/[^ ]+' | sort -u)"
passwd='root:x:0:0:root:/root:/sbin/nologin
berth:x:10001:10001:berth:/tmp:/sbin/nologin'
base_hash="$( { sha256sum "$node_bin" $libs; echo "$passwd"; } | hash_of)"
base="berth-base:$base_hash"
if ! have_image "$base"; then
  echo "docker-images: building $base from $node_bin" >&2
  rootfs="$(mktemp -d)"
  mkdir -p "$rootfs/usr/local/bin" "$rootfs/etc" "$rootfs/tmp"
  chmod 1777 "$rootfs/tmp"
  cp "$node_bin" "$rootfs/usr/local/bin/node"
  for lib in $libs; do mkdir -p "$rootfs$(dirname "$lib")"; cp -L "$lib" "$rootfs$lib"; done
  printf '%s\n' "$passwd" >"$rootfs/etc/passwd"
  printf 'root:x:0:\nberth:x:10001:\n' >"$rootfs/etc/group"
  tar -C "$rootfs" --owner=0 --group=0 -cf - . | docker import --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' - "$base" >&2
  rm -rf "$rootfs"
fi

# `scripts/docker-images.sh base`: only the base (the cluster's test image is built on it).
if [ "${1:-}" = base ]; then
  echo "BASE_IMAGE=$base"
  exit 0
fi

# 2. berth's image: a lean context (built dist/, production node_modules), then the Dockerfile.
src_hash="$(cd "$root" && find src tsconfig.json tsconfig.build.json -type f -print0 | sort -z | xargs -0 sha256sum | hash_of)"
dist="$cache/dist-$src_hash"
if [ ! -f "$dist/cli.js" ]; then
  echo "docker-images: compiling dist/" >&2
  # Type errors fail the type check, not this step: tsc emits JavaScript regardless.
  (cd "$root" && node node_modules/typescript/bin/tsc -p tsconfig.build.json --outDir "$dist.tmp" >"$dist.log" 2>&1) || echo "docker-images: tsc reported errors, dist/ emitted anyway (see $dist.log)" >&2
  [ -f "$dist.tmp/cli.js" ] || { echo "docker-images: tsc emitted no dist/cli.js" >&2; exit 1; }
  rm -rf "$dist" && mv "$dist.tmp" "$dist"
fi
lock_hash="$(cat "$root/package.json" "$root/package-lock.json" | hash_of)"
modules="$cache/modules-$lock_hash"
if [ ! -d "$modules/node_modules" ]; then
  echo "docker-images: pruning node_modules to production dependencies" >&2
  rm -rf "$modules.tmp" && mkdir -p "$modules.tmp"
  cp "$root/package.json" "$root/package-lock.json" "$modules.tmp/"
  cp -a "$root/node_modules" "$modules.tmp/node_modules"
  (cd "$modules.tmp" && npm prune --omit=dev --no-audit --no-fund --ignore-scripts >&2)
  rm -rf "$modules" && mv "$modules.tmp" "$modules"
fi
berth_hash="$( { echo "$base $src_hash $lock_hash"; cd "$root" && find bin schemas Dockerfile -type f -print0 | sort -z | xargs -0 sha256sum; } | hash_of)"
berth="berth-image:$berth_hash"
if ! have_image "$berth"; then
  echo "docker-images: building $berth" >&2
  ctx="$(mktemp -d)"
  cp -r "$root/bin" "$root/schemas" "$root/package.json" "$root/Dockerfile" "$root/.dockerignore" "$ctx/"
  cp -al "$modules/node_modules" "$ctx/node_modules"
  cp -r "$dist" "$ctx/dist"
  docker build -q --build-arg "BASE_IMAGE=$base" -t "$berth" "$ctx" >&2
  rm -rf "$ctx"
fi

# 3. Test images on top of berth's.
fixtures="$root/test/fixtures/docker"
test_hash="$( { echo "$berth"; sha256sum "$fixtures/Dockerfile" "$fixtures/mcp-server.mjs" "$fixtures/npx" "$fixtures/uvx"; } | hash_of)"
for target in runtime http; do
  tag="berth-test-$target:$test_hash"
  if ! have_image "$tag"; then
    echo "docker-images: building $tag" >&2
    docker build -q --target "$target" --build-arg "BERTH_IMAGE=$berth" -t "$tag" "$fixtures" >&2
  fi
done

echo "BASE_IMAGE=$base"
echo "BERTH_IMAGE=$berth"
echo "TEST_RUNTIME_IMAGE=berth-test-runtime:$test_hash"
echo "TEST_HTTP_IMAGE=berth-test-http:$test_hash"
