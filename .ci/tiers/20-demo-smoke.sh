#!/usr/bin/env bash
# The README's main command, as a new user runs it: `cargo run --release -- demo`, then the
# curl lines it prints: a customer texts "saldo" and gets her balance back, an SMS goes out
# and is delivered.
set -euo pipefail
command -v curl >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >/dev/null; }
tmp=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$tmp"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
api=$(free_port); sim=$(free_port); token=ci-demo-token-0123456789
cargo build --release --quiet
cargo run --release --quiet -- demo --dir "$tmp/demo" --listen "127.0.0.1:$api" \
  --sim-control "127.0.0.1:$sim" --token "$token" >"$tmp/out" 2>&1 &
pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$api/api/health" >/dev/null && break; sleep 0.2; done
grep -q "admin token: $token" "$tmp/out"
curl -sf -d '{"from":"+5491123456789","text":"Hola, ¿cuál es mi saldo?"}' "http://127.0.0.1:$sim/inbound" >/dev/null
curl -sf -H "Authorization: Bearer $token" \
  -d '{"to":"011 15-2345-6789","text":"Su pago fue registrado. ¡Gracias!"}' "http://127.0.0.1:$api/api/messages" >/dev/null
ok=0
for _ in $(seq 100); do
  if curl -sf -H "Authorization: Bearer $token" "http://127.0.0.1:$api/api/messages" | python3 -c '
import json, sys
m = json.load(sys.stdin)["messages"]
states = sorted(x["direction"] + ":" + x["state"] for x in m)
reply = [x["text"] for x in m if x["direction"] == "out" and "saldo" in x["text"]]
sys.exit(0 if states == ["in:received", "out:delivered", "out:delivered"]
         and reply and "$ 1.234,50" in reply[0] else 1)'; then ok=1; break; fi
  sleep 0.2
done
[ "$ok" = 1 ] || { echo "demo: messages did not reach the expected states"; cat "$tmp/out"; exit 1; }
kill -TERM "$pid"; wait "$pid"
echo "demo smoke: 1 passed, 0 failed"
