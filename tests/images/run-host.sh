#!/usr/bin/env bash
# Start a disposable systemd runner host container from the local images and
# wait until systemd has booted. Used by the demo, the integration tests and the
# benchmark (Molecule sets the same options in its platform definitions).
#
#   tests/images/run-host.sh NAME RELEASE [extra docker run options...]
#
# An already running container of that name is kept; a stopped one is replaced.
set -euo pipefail
name="${1:?usage: run-host.sh NAME RELEASE [docker run options...]}"
release="${2:?usage: run-host.sh NAME RELEASE [docker run options...]}"
shift 2
image="${IMAGE_PREFIX:-hardened-gitlab-runner/debian}:$release"

docker image inspect "$image" >/dev/null 2>&1 || { echo "run-host.sh: image $image is missing; run make images" >&2; exit 3; }
if [ "$(docker inspect -f '{{ .State.Running }}' "$name" 2>/dev/null)" != true ]; then
  docker rm -f "$name" >/dev/null 2>&1 || true
  # systemd as PID 1 without --privileged (it fails on the test machines):
  # host cgroup namespace, tmpfs /run, and the capabilities systemd needs.
  docker run -d --name "$name" --hostname "$name" --network hgr-test \
    --cgroupns host -v /sys/fs/cgroup:/sys/fs/cgroup:rw \
    --tmpfs /run --tmpfs /run/lock --tmpfs /tmp \
    --cap-add SYS_ADMIN --cap-add NET_ADMIN --cap-add SYS_PTRACE \
    -e container=docker "$@" "$image" >/dev/null
fi
state=
for _ in $(seq 90); do
  state="$(docker exec "$name" systemctl is-system-running 2>/dev/null || true)"
  case "$state" in running|degraded) exit 0 ;; esac
  sleep 1
done
echo "run-host.sh: systemd in $name did not finish booting within 90 s (state '$state')" >&2
docker logs --tail 20 "$name" >&2 || true
exit 1
