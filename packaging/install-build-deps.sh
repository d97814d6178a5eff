#!/usr/bin/env bash
# Installs what building and checking the .deb packages needs, when missing: cargo-deb,
# lintian, Debian's cross compilers for arm64 and armhf, qemu-user to run the arm binaries,
# and the Rust standard libraries of the two Raspberry Pi targets. Run as root (apt-get).
set -euo pipefail

need=()
for pair in lintian:lintian qemu-aarch64:qemu-user qemu-arm:qemu-user \
    aarch64-linux-gnu-gcc:gcc-aarch64-linux-gnu arm-linux-gnueabihf-gcc:gcc-arm-linux-gnueabihf \
    dpkg-shlibdeps:dpkg-dev python3:python3 curl:curl file:file; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
[ -e /usr/aarch64-linux-gnu/lib/libc.so.6 ] || need+=(libc6-dev-arm64-cross)
[ -e /usr/arm-linux-gnueabihf/lib/libc.so.6 ] || need+=(libc6-dev-armhf-cross)
if [ "${#need[@]}" -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
command -v cargo-deb >/dev/null 2>&1 || cargo install cargo-deb --locked --quiet
installed="$(rustup target list --installed)"
for t in aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf; do
    grep -qx "$t" <<<"$installed" || rustup target add "$t"
done
