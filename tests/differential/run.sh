#!/usr/bin/env bash
# Differential tests of the SMS codec against libGammu (python-gammu): installs what is missing
# (idempotent, non-interactive), builds the pasarela binary and runs sms_diff.py, which prints
# "differential: N passed, M failed" and exits non-zero on any mismatch.
set -euo pipefail
cd "$(dirname "$0")/../.."

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

pip_install() {
    export PIP_ROOT_USER_ACTION=ignore
    python3 -m pip install --quiet --disable-pip-version-check "$@" \
        || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "$@"
}

if ! python3 -c 'import gammu' 2>/dev/null; then
    if ! pkg-config --exists gammu 2>/dev/null; then
        export DEBIAN_FRONTEND=noninteractive
        as_root apt-get update -qq
        as_root apt-get install -y -qq libgammu-dev pkg-config gcc >/dev/null
    fi
    if ! pip_install 'python-gammu>=3.2,<4'; then
        # The extension builds from source; Debian's own Python needs its headers for that.
        as_root apt-get install -y -qq python3-dev >/dev/null
        pip_install 'python-gammu>=3.2,<4'
    fi
fi

cargo build --quiet --bin pasarela
python3 tests/differential/sms_diff.py "${CARGO_TARGET_DIR:-target}/debug/pasarela"
