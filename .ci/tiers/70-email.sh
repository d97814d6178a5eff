#!/usr/bin/env bash
# Email tier: the [[email]] accounts against a real SMTP server, aiosmtpd (PyPI), run by
# tests/common/smtpd.py with STARTTLS or implicit TLS from a test CA, AUTH and faults
# (421 then accepted, 550, a connection dropped after DATA, no STARTTLS, a wrong password,
# the rate limit). Runs the ignored tests of tests/email.rs.
set -euo pipefail

cd "$(dirname "$0")/../.."

target_dir="${CARGO_TARGET_DIR:-target}"
venv="$target_dir/smtpd-venv"
if ! "$venv/bin/python" -c 'import aiosmtpd' >/dev/null 2>&1; then
    if ! python3 -m venv --help >/dev/null 2>&1; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    fi
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "aiosmtpd==1.4.6"
fi

PASARELA_SMTPD_PYTHON="$venv/bin/python" cargo test --quiet --test email -- --ignored
