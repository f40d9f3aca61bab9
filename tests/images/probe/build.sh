#!/usr/bin/env bash
# Build the image hardened.gitlab_runner.runner_job_probe starts its job and
# service containers from, on this machine's Docker, from the project's Debian
# image (tests/images/build.sh builds that one).
#
#   tests/images/probe/build.sh                   -> hardened-gitlab-runner/probe:latest
#   PROBE_IMAGE=my/probe:1 BASE=hardened-gitlab-runner/debian:13 tests/images/probe/build.sh
#
# Cached: the image is rebuilt only when the Dockerfile, this script or the base
# image changed (a hash of all three is stored as the label build.hash), or FORCE=1.
#
# Another Docker engine (a runner host without a registry) gets it with
#   docker save hardened-gitlab-runner/probe:latest | gzip > probe.tar.gz
#   docker load < probe.tar.gz        # on the runner host
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
image="${PROBE_IMAGE:-hardened-gitlab-runner/probe:latest}"
base="${BASE:-hardened-gitlab-runner/debian:12}"

command -v docker >/dev/null || { echo "probe/build.sh: docker is missing" >&2; exit 3; }
base_id="$(docker image inspect -f '{{ .Id }}' "$base" 2>/dev/null)" \
  || { echo "probe/build.sh: base image $base is missing; run tests/images/build.sh ${base##*:} (make images)" >&2; exit 3; }
hash="$(cat "$here/Dockerfile" "$here/build.sh" | sha256sum | cut -c1-16)"
hash="$(printf '%s|%s' "$hash" "$base_id" | sha256sum | cut -c1-16)"

if [ "${FORCE:-0}" != 1 ] \
   && [ "$(docker image inspect -f '{{ index .Config.Labels "build.hash" }}' "$image" 2>/dev/null)" = "$hash" ]; then
  echo "image $image is up to date"
  exit 0
fi

# The legacy builder: it needs no buildx plugin and never pulls a local base image.
DOCKER_BUILDKIT=0 docker build -q --build-arg "BASE=$base" \
  --label "build.hash=$hash" \
  --label "org.opencontainers.image.description=hardened.gitlab_runner job probe (from $base)" \
  -t "$image" "$here" >/dev/null
echo "built $image"
