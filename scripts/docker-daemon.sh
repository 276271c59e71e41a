#!/usr/bin/env bash
# Makes a Docker daemon answer on /var/run/docker.sock: installs Debian's
# docker.io when dockerd is missing (root only), starts dockerd in the
# background when nothing answers, and waits for it with a deadline.
# Exit 0 when a daemon answers; non-zero with the reason on stderr otherwise.
# Used by .ci/run and by the Docker tests (test/helpers/docker.ts).
set -uo pipefail
log="${BERTH_DOCKERD_LOG:-${TMPDIR:-/tmp}/berth-dockerd.log}"
deadline=$((SECONDS + ${BERTH_DOCKERD_WAIT_SECONDS:-60}))

answers() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

if command -v docker >/dev/null 2>&1 && answers; then exit 0; fi
if ! command -v dockerd >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "docker-daemon: dockerd is not installed and cannot be (needs root and apt-get)" >&2
    exit 1
  fi
  echo "docker-daemon: installing docker.io" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io) >&2 || {
    echo "docker-daemon: apt-get install docker.io failed" >&2
    exit 1
  }
fi
if [ "$(id -u)" != 0 ]; then
  echo "docker-daemon: no daemon answers and starting dockerd needs root" >&2
  exit 1
fi
# --ip: ports published without an address bind to loopback, never to every interface.
echo "docker-daemon: starting dockerd (log: $log)" >&2
nohup dockerd --ip=127.0.0.1 >"$log" 2>&1 &
while [ $SECONDS -lt $deadline ]; do
  if answers; then exit 0; fi
  sleep 0.5
done
echo "docker-daemon: dockerd did not answer within the deadline; its log ends with:" >&2
tail -n 20 "$log" >&2
exit 1
