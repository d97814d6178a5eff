#!/usr/bin/env bash
# Builds one pasarela .deb: build-deb.sh TARGET PROFILE OUTDIR [cargo-deb options...]
#   TARGET   x86_64-unknown-linux-gnu (this machine), aarch64-unknown-linux-gnu (arm64:
#            Raspberry Pi 3/4/5 with a 64-bit OS) or armv7-unknown-linux-gnueabihf (armhf:
#            32-bit Raspberry Pi OS)
#   PROFILE  release (what ships) or ci-cross (CI's quicker cross builds)
# Cross builds use Debian's cross compilers for the linker and for the bundled SQLite;
# install-build-deps.sh installs them.
set -euo pipefail
cd "$(dirname "$0")/.."

target="$1"
profile="$2"
out="$3"
shift 3

host="$(rustc -vV | sed -n 's/^host: //p')"
args=(--profile "$profile" -o "$out")
case "$target" in
"$host") ;;
aarch64-unknown-linux-gnu)
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
    export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
    export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
    args+=(--target "$target")
    ;;
armv7-unknown-linux-gnueabihf)
    export CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_LINKER=arm-linux-gnueabihf-gcc
    export CC_armv7_unknown_linux_gnueabihf=arm-linux-gnueabihf-gcc
    export AR_armv7_unknown_linux_gnueabihf=arm-linux-gnueabihf-ar
    args+=(--target "$target")
    ;;
*)
    echo "build-deb.sh: unknown target $target" >&2
    exit 2
    ;;
esac
mkdir -p "$out"
cargo deb "${args[@]}" "$@"
