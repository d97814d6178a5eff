#!/usr/bin/env bash
# The SMS codec against libGammu (python-gammu): ours encodes, theirs decodes, and back.
set -euo pipefail
bash tests/differential/run.sh
