#!/usr/bin/env bash
# Builds the three release packages with the full release profile (LTO, one codegen unit,
# stripped) into OUTDIR (default target/debian-release):
#   pasarela_<version>_amd64.deb   x86_64 servers
#   pasarela_<version>_arm64.deb   Raspberry Pi 3/4/5 with 64-bit Raspberry Pi OS
#   pasarela_<version>_armhf.deb   Raspberry Pi 2/3/4 with 32-bit Raspberry Pi OS
# On a 2-core machine this takes about half an hour. Prerequisites: install-build-deps.sh.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$(realpath -m "${1:-$here/../target/debian-release}")"
host="$(rustc -vV | sed -n 's/^host: //p')"
for target in "$host" aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf; do
    echo "== $target"
    "$here/build-deb.sh" "$target" release "$out"
done
ls -l "$out"/*.deb
