#!/usr/bin/env bash
# Create a Debian bookworm root file system tarball with debootstrap.
# Why: no image registry is reachable here, so `FROM debian` cannot be pulled; the
# tarball is turned into the `finishline/base` image with `docker import`. Cached: the
# ~70 s debootstrap runs only when the tarball is missing.
#
# Usage: make-rootfs.sh [OUT.tar]   (default $FINISHLINE_CACHE/base/bookworm-rootfs.tar)
set -euo pipefail

CACHE="${FINISHLINE_CACHE:-/var/cache/finishline}/base"
OUT="${1:-$CACHE/bookworm-rootfs.tar}"
MIRROR="${FINISHLINE_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
PACKAGES="python3,python3-venv,ca-certificates,libgomp1,libstdc++6,curl"

if [[ -s "$OUT" ]]; then
    echo "rootfs cached at $OUT"
    exit 0
fi
mkdir -p "$(dirname "$OUT")"
ROOT="$(mktemp -d "${TMPDIR:-/tmp}/finishline-rootfs.XXXXXX")"
trap 'rm -rf "$ROOT"' EXIT

start=$(date +%s)
debootstrap --variant=minbase --include="$PACKAGES" bookworm "$ROOT" "$MIRROR"
# Slim the image: package lists and docs are not needed at run time.
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/archives/*.deb \
       "$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/*
tar -C "$ROOT" --numeric-owner -cf "$OUT.tmp" .
mv "$OUT.tmp" "$OUT"
echo "rootfs $OUT ($(du -h "$OUT" | cut -f1)) in $(( $(date +%s) - start )) s"
