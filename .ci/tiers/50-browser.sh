#!/usr/bin/env bash
# The operators' pages in a real browser: Debian's chromium and chromium-driver drive a running
# `pasarela demo` through WebDriver (Python selenium): log in, the modem's signal on the
# dashboard, send from /send and see it delivered, a customer's "saldo" appearing live in the
# conversations, a reply, a CSV import with a bad row, English. axe-core checks every page.
# Screenshots go to $PASARELA_SHOTS (default target/browser-shots).
# PASARELA_BIN runs another binary (e.g. a debug build) instead of the release build.
set -euo pipefail
cd "$(dirname "$0")/../.."
export DEBIAN_FRONTEND=noninteractive
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  apt-get update -qq
  apt-get install -y -qq chromium chromium-driver >/dev/null
fi
python3 -c 'import selenium' 2>/dev/null || python3 -m pip install -q --disable-pip-version-check selenium
axe_dir=target/axe
if [ ! -f "$axe_dir/node_modules/axe-core/axe.min.js" ]; then
  mkdir -p "$axe_dir"
  (cd "$axe_dir" && npm install --silent --no-audit --no-fund axe-core@4 >/dev/null)
fi
bin=${PASARELA_BIN:-}
if [ -z "$bin" ]; then
  cargo build --release --quiet   # a no-op after tier 20's build
  bin=target/release/pasarela
fi
shots=${PASARELA_SHOTS:-target/browser-shots}
tmp=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
api=$(free_port); sim=$(free_port); password=ci-browser-0123
"$bin" demo --dir "$tmp/demo" --listen "127.0.0.1:$api" --sim-control "127.0.0.1:$sim" \
  --token ci-browser-token-0123456789 --ui-password "$password" >"$tmp/out" 2>&1 &
pid=$!
for _ in $(seq 150); do curl -sf "http://127.0.0.1:$api/api/health" >/dev/null && break; sleep 0.2; done
grep -q "web pages: http://127.0.0.1:$api/  user: admin  password: $password" "$tmp/out" \
  || { echo "browser: demo did not print the pages' address, user and password"; cat "$tmp/out"; exit 1; }
start=$(date +%s)
python3 .ci/browser/pages.py "http://127.0.0.1:$api" "http://127.0.0.1:$sim" "$password" "$shots" \
  "$axe_dir/node_modules/axe-core/axe.min.js" \
  || { echo "browser: failed; the demo's log:"; tail -50 "$tmp/out"; exit 1; }
kill -TERM "$pid"; wait "$pid" || true; pid=
echo "{\"tier\":\"browser\",\"seconds\":$(( $(date +%s) - start )),\"screenshots\":$(ls "$shots" | wc -l)}"
echo "browser: 1 passed, 0 failed"
