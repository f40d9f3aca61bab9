#!/usr/bin/env bash
# Make this machine able to run the demo and the tests: Debian's docker.io,
# debootstrap, nftables and friends, a running Docker daemon, a Python with venv.
# Installs what is missing when run as root on a Debian-family system; otherwise
# stops and says exactly what is missing.
set -euo pipefail

# command -> Debian package that provides it
declare -A needs=(
  [docker]=docker.io [dockerd]=docker.io [debootstrap]=debootstrap [nft]=nftables
  [apt-ftparchive]=apt-utils [gpg]=gnupg [dpkg-deb]=dpkg [ip]=iproute2 [python3]=python3
  [shellcheck]=shellcheck
)
missing=()
for cmd in "${!needs[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${needs[$cmd]}")
done
if command -v python3 >/dev/null 2>&1 && ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  missing+=(python3-venv)
fi

if [ "${#missing[@]}" -gt 0 ]; then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "host-deps: missing Debian packages: ${missing[*]}" >&2
    echo "host-deps: install them as root (apt-get install ${missing[*]}) or run this as root on Debian/Ubuntu." >&2
    exit 1
  fi
  echo "host-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  if [ -d /run/systemd/system ]; then
    echo "host-deps: starting docker with systemd"
    systemctl start docker
  elif [ "$(id -u)" -eq 0 ]; then
    # No systemd as PID 1 (containers, CI sandboxes): start the daemon by hand.
    echo "host-deps: starting dockerd (log: /var/log/hgr-dockerd.log)"
    nohup dockerd >/var/log/hgr-dockerd.log 2>&1 &
  else
    echo "host-deps: no Docker daemon answers and I am not root to start one." >&2
    exit 1
  fi
  for _ in $(seq 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  docker info >/dev/null 2>&1 || { echo "host-deps: dockerd did not come up; see /var/log/hgr-dockerd.log" >&2; exit 1; }
fi
echo "host-deps: ok (docker $(docker version -f '{{ .Server.Version }}'))"
