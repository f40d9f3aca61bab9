#!/usr/bin/env bash
# Build a local systemd base image for a Debian release with debootstrap and
# `docker import`. No container registry is reachable on the machines this
# collection is tested on, so the images Molecule and the demo start come from here.
#
#   tests/images/build.sh 12|13        -> image hardened-gitlab-runner/debian:12|13
#
# The image is cached: it is rebuilt only when its recipe below changes (a hash
# of it is stored as an image label) or FORCE=1 is set.
set -euo pipefail

release="${1:?usage: build.sh 12|13}"
case "$release" in
  12) suite=bookworm ;;
  13) suite=trixie ;;
  *) echo "build.sh: unsupported Debian release '$release' (12 or 13)" >&2; exit 2 ;;
esac

image="${IMAGE_PREFIX:-hardened-gitlab-runner/debian}:${release}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# python3-apt lets Ansible's apt modules work without fetching it first; the
# rest is what a minimal systemd host needs to boot in a container.
packages=systemd,systemd-sysv,dbus,python3,python3-apt,ca-certificates,iproute2,procps,libcap2-bin
# Units that cannot work in a container and only slow down boot or fail it.
masked_units="systemd-udevd.service systemd-udev-trigger.service systemd-udevd-control.socket
  systemd-udevd-kernel.socket getty.target console-getty.service systemd-modules-load.service
  sys-kernel-config.mount sys-kernel-debug.mount sys-kernel-tracing.mount systemd-firstboot.service
  systemd-remount-fs.service apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer"
# Bump when the way the root file system is prepared changes.
recipe_revision=1
script_hash="$(printf '%s|%s|%s|%s|%s' "$suite" "$mirror" "$packages" "$masked_units" "$recipe_revision" | sha256sum | cut -c1-16)"

for tool in docker debootstrap; do
  command -v "$tool" >/dev/null || { echo "build.sh: '$tool' is missing (apt-get install docker.io debootstrap)" >&2; exit 3; }
done

if [ "${FORCE:-0}" != 1 ] \
   && [ "$(docker image inspect -f '{{ index .Config.Labels "build.hash" }}' "$image" 2>/dev/null)" = "$script_hash" ]; then
  echo "image $image is up to date"
  exit 0
fi

# The root file system is kept as a tarball, so a lost image is re-imported in
# seconds instead of bootstrapped again.
cache_dir="${HGR_IMAGE_CACHE:-/var/tmp/hardened-gitlab-runner-images}"
tarball="$cache_dir/debian-$release-$script_hash.tar"
mkdir -p "$cache_dir"

if [ ! -s "$tarball" ] || [ "${FORCE:-0}" = 1 ]; then
  work="$(mktemp -d /var/tmp/hgr-image.XXXXXX)"
  # debootstrap mounts proc/sys (and may bind /dev) inside the root; never let
  # the clean-up walk into a mount.
  cleanup() {
    awk -v w="$work" '$2 ~ "^"w {print $2}' /proc/mounts | sort -r | xargs -r -n1 umount -l || true
    rm -rf --one-file-system "$work"
  }
  trap cleanup EXIT
  rootfs="$work/rootfs"

  echo "debootstrap $suite into $rootfs (this takes about a minute)"
  debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || { tail -n 30 "$work/debootstrap.log" >&2; exit 1; }

  for unit in $masked_units; do
    ln -sf /dev/null "$rootfs/etc/systemd/system/$unit"
  done
  # Each container gets its own machine id at first boot.
  : > "$rootfs/etc/machine-id"
  rm -f "$rootfs/var/lib/dbus/machine-id"
  # Keep the image small; apt lists are fetched again by whoever needs them.
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*

  rm -f "$cache_dir"/debian-"$release"-*.tar
  tar -C "$rootfs" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
fi

docker import \
  --change 'ENV container=docker' \
  --change 'CMD ["/lib/systemd/systemd"]' \
  --change "LABEL build.hash=$script_hash" \
  --change "LABEL org.opencontainers.image.description=\"Debian $release ($suite) systemd test host for hardened.gitlab_runner\"" \
  "$tarball" "$image" >/dev/null
echo "built $image"
