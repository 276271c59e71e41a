#!/usr/bin/env bash
# need.sh WHAT COMMAND...: runs COMMAND, which makes a part some tests need (a Docker daemon, Chromium).
# When it fails: in CI (CI=true) the run fails, since a skipped suite there hides what was never tested;
# on a developer's machine it warns and the tests that need WHAT skip.
set -uo pipefail
what="$1"
shift
"$@" && exit 0
if [ "${CI:-}" = true ]; then
  echo "ci: ERROR: no $what, and CI=true: the tests that need it must run here" >&2
  exit 1
fi
echo "ci: WARNING: no $what; the tests that need it will skip" >&2
