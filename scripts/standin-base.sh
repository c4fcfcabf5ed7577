#!/usr/bin/env bash
# Makes the stand-in for the Dockerfile's production base (debian:<release>-slim) and prints its
# podman image reference, for `podman build --build-arg BASE_IMAGE=<it>` where no registry can be
# reached. Needs root, debootstrap, podman and Debian's archive.
#
# The stand-in is what Debian's official images are made of: `debootstrap --variant=minbase` of
# the same release from Debian's archive, with the same APT sources (release, -updates, -security)
# and the container settings Debian's image builder (debuerreotype) adds: no APT caches, no
# translations, gzipped indexes, no service starts, and the slim variant's dpkg excludes (no
# docs, man pages or locales). What differs: the archive's state on the day it is made (the
# production digest is a fixed day), and the image history and labels.
#
# Cached: the root file system's tarball under $OPENAI_KEY_EXPORTER_TEST_CACHE (default
# /var/cache/openai-key-exporter-tests), and the image in podman's store, both keyed by what
# they are made from (this script, the release, debootstrap's version, the architecture). For a
# newer point release, delete the cache directory and `podman rmi` the image.
set -euo pipefail
script=$(readlink -f "${BASH_SOURCE[0]}")
cd "$(dirname "$script")/.."

# The release of the production base: ARG BASE_IMAGE=debian:<release>-slim@sha256:...
SUITE=$(sed -n 's/^ARG BASE_IMAGE=debian:\([a-z]*\)[-@].*/\1/p' Dockerfile)
[ -n "$SUITE" ] || {
  echo "Dockerfile: ARG BASE_IMAGE names no debian:<release> image to stand in for" >&2
  exit 1
}
MIRROR=http://deb.debian.org/debian
SECURITY_MIRROR=http://deb.debian.org/debian-security
CACHE=${OPENAI_KEY_EXPORTER_TEST_CACHE:-/var/cache/openai-key-exporter-tests}

arch=$(dpkg --print-architecture)
key=$({
  cat "$script"
  echo "$SUITE"
  dpkg-query -W -f '${Version}\n' debootstrap
  echo "$arch"
} | sha256sum | cut -c1-16)
image=localhost/openai-key-exporter-standin:$SUITE-$key
tarball=$CACHE/standin-$SUITE-$arch-$key.tar

if podman image exists "$image"; then
  echo "$image"
  exit 0
fi

configure_like_debian_images() {
  local root=$1
  rm -f "$root/etc/apt/sources.list"
  cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY_MIRROR
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  # Services never start during a build.
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
  chmod 0755 "$root/usr/sbin/policy-rc.d"
  echo force-unsafe-io >"$root/etc/dpkg/dpkg.cfg.d/docker-apt-speedup"
  local clean='"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true";'
  cat >"$root/etc/apt/apt.conf.d/docker-clean" <<EOF
// APT keeps no package or index caches in an image layer.
DPkg::Post-Invoke { $clean };
APT::Update::Post-Invoke { $clean };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  echo 'Acquire::GzipIndexes "true";' >"$root/etc/apt/apt.conf.d/docker-gzip-indexes"
  echo 'Acquire::Languages "none";' >"$root/etc/apt/apt.conf.d/docker-no-languages"
  echo 'Apt::AutoRemove::SuggestsImportant "false";' \
    >"$root/etc/apt/apt.conf.d/docker-autoremove-suggests"
  # The slim variant: these paths stay out of every package installed later, and go now.
  local excluded=(/usr/share/doc /usr/share/groff /usr/share/info /usr/share/linda
    /usr/share/lintian/overrides /usr/share/locale /usr/share/man)
  {
    echo '# The slim variant: documentation, manuals and translations are not installed.'
    for directory in "${excluded[@]}"; do echo "path-exclude $directory/*"; done
    echo 'path-include /usr/share/doc/*/copyright'
    echo 'path-include /usr/share/locale/locale.alias'
  } >"$root/etc/dpkg/dpkg.cfg.d/docker"
  for directory in "${excluded[@]}"; do
    [ -d "$root$directory" ] || continue
    find "$root$directory" -mindepth 1 -depth \
      -not -path "$root/usr/share/doc/*/copyright" -not -path "$root/usr/share/locale/locale.alias" \
      \( -type f -o -type l \) -delete
    find "$root$directory" -mindepth 1 -depth -type d -empty -delete
  done
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
    "$root"/var/log/* "$root"/tmp/* "$root"/var/tmp/*
  # The host's name and resolver come from the runtime, not the image.
  : >"$root/etc/hostname"
  : >"$root/etc/resolv.conf"
}

if [ ! -s "$tarball" ]; then
  mkdir -p "$CACHE"
  work=$(mktemp -d "$CACHE/build.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  echo "debootstrap $SUITE ($arch) from $MIRROR into $work, once (cached as $tarball)" >&2
  if ! debootstrap --variant=minbase --arch="$arch" "$SUITE" "$work/rootfs" "$MIRROR" \
    >"$work/debootstrap.log" 2>&1; then
    tail -n 30 "$work/debootstrap.log" >&2
    [ -f "$work/rootfs/debootstrap/debootstrap.log" ] && tail -n 30 "$work/rootfs/debootstrap/debootstrap.log" >&2
    exit 1
  fi
  configure_like_debian_images "$work/rootfs"
  tar --numeric-owner --xattrs -C "$work/rootfs" -cf "$work/rootfs.tar" .
  mv "$work/rootfs.tar" "$tarball"
fi

podman import --quiet --change 'CMD ["bash"]' "$tarball" "$image" >/dev/null
# What older versions of this script made is never used again.
find "$CACHE" -maxdepth 1 -name 'standin-*.tar' ! -path "$tarball" -delete
podman images --format '{{.Repository}}:{{.Tag}}' "${image%:*}" | grep -vxF "$image" |
  xargs -r podman rmi >/dev/null 2>&1 || true
echo "$image"
