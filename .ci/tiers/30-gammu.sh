#!/usr/bin/env bash
# Gammu tier: Gammu's own command-line tool must identify the modem simulator, ask it a USSD code
# (getussd), send through it (Spanish text, a 3-part UCS-2 message) and read what the network put
# on its SIM.
set -euo pipefail

cd "$(dirname "$0")/../.."

if ! command -v gammu >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gammu >/dev/null
fi

cargo build --quiet
target_dir="${CARGO_TARGET_DIR:-target}"
bin="$target_dir/debug/pasarela"

tmp="$(mktemp -d)"
sim_pid=""
cleanup() {
    if [ -n "$sim_pid" ]; then
        kill "$sim_pid" 2>/dev/null || true
        wait "$sim_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
api="http://127.0.0.1:$port"
"$bin" modem-sim --link "$tmp/modem" --control "127.0.0.1:$port" >"$tmp/sim.log" 2>&1 &
sim_pid=$!
for _ in $(seq 50); do
    [ -L "$tmp/modem" ] && curl -sf "$api/sent" >/dev/null 2>&1 && break
    sleep 0.1
done

printf '[gammu]\nport = %s\nconnection = at115200\n' "$tmp/modem" >"$tmp/gammurc"
g() { timeout 60 gammu -c "$tmp/gammurc" "$@"; }

passed=0
failed=0
check() {
    local name="$1"
    shift
    if "$@" >"$tmp/out" 2>&1; then
        passed=$((passed + 1))
        echo "ok   $name"
    else
        failed=$((failed + 1))
        echo "FAIL $name"
        sed 's/^/     /' "$tmp/out"
    fi
}

# Whether GET /sent has a message with exactly this text and part count.
sent_has() {
    curl -sf "$api/sent" | python3 -c '
import json, sys
text, parts = sys.argv[1], int(sys.argv[2])
sent = json.load(sys.stdin)
ok = any(m["text"] == text and m["parts"] == parts and m["to"] == "+5491123456789" for m in sent)
print(json.dumps(sent, ensure_ascii=False, indent=1)); sys.exit(0 if ok else 1)' "$1" "$2"
}

identify() {
    g identify | tee "$tmp/identify"
    grep -q 'Manufacturer *: Pasarela' "$tmp/identify"
    grep -q 'SIM-Simulator' "$tmp/identify"
    grep -q 'IMEI *: [0-9]\{15\}' "$tmp/identify"
}

short='Señor Núñez, su saldo es $ 1.234,50 ¿Consultas? ¡Gracias!'
send_short() {
    g sendsms TEXT +5491123456789 -text "$short" -unicode
    sent_has "$short" 1
}

# 180 characters: three UCS-2 parts of 67 units at most.
long='Estimado cliente: su factura de marzo está disponible. Podrá abonarla en línea o en nuestras oficinas. Ante cualquier duda comuníquese con atención al cliente. ¡Gracias! Ñandú Núñez'
send_long() {
    [ "$(printf '%s' "$long" | python3 -c 'import sys; print(len(sys.stdin.read()))')" -eq 180 ]
    g sendsms TEXT +5491123456789 -len 400 -unicode -text "$long"
    sent_has "$long" 3
}

in_short='Hola, ¿cómo está? Quiero dar de baja el servicio.'
in_long='Buenos días: reclamo por corte de servicio desde el lunes. Vivo en calle Güemes 1234, piso 3º. Ya reinicié el módem dos veces y sigue sin señal. ¿Pueden mandar un técnico? José'
inbound() {
    python3 -c 'import json,sys; print(json.dumps({"from": sys.argv[1], "text": sys.argv[2]}))' "$1" "$2" |
        curl -sf -H 'Content-Type: application/json' --data-binary @- "$api/inbound"
}
read_inbox() {
    inbound +5491187654321 "$in_short" | grep -q '"parts":1'
    inbound Personal "$in_long" | grep -q '"parts":3'
    g getallsms | tee "$tmp/all"
    grep -qF "$in_short" "$tmp/all"
    grep -q 'part 3 of 3' "$tmp/all"
    g geteachsms | tee "$tmp/each"
    grep -qF "$in_long" "$tmp/each"
    grep -qF "$in_short" "$tmp/each"
}

# USSD: Gammu's getussd against the simulator's AT+CUSD (answer after OK, as +CUSD:), in
# whatever character set Gammu picks (AT+CSCS), then a session the network ends (+CUSD: 2).
ussd_balance() {
    g getussd '*444#' | tee "$tmp/ussd"
    grep -qF 'Su saldo es $ 1.234,50. Vence el 31/12/2026.' "$tmp/ussd"
}
ussd_huawei_hex() {
    curl -sf -H 'Content-Type: application/json' -d '{"ussd_hex": true}' "$api/config" >/dev/null
    local ok=0
    g getussd '*444#' | tee "$tmp/ussd" && grep -qF 'Su saldo es $ 1.234,50. Vence el 31/12/2026.' "$tmp/ussd" || ok=1
    curl -sf -H 'Content-Type: application/json' -d '{"ussd_hex": false}' "$api/config" >/dev/null
    return "$ok"
}
ussd_ucs2() {
    g getussd '*555#' | tee "$tmp/ussd"
    grep -qF 'Tu crédito: $ 1.234,50 — ¡recargá ya!' "$tmp/ussd"
}
ussd_ended() {
    g getussd '*999#' | tee "$tmp/ussd"
    grep -q 'Status *: Terminated' "$tmp/ussd"
}

check "gammu identify" identify
check "gammu getussd, credit answer" ussd_balance
check "gammu getussd, Huawei-style hex answer" ussd_huawei_hex
check "gammu getussd, UCS-2 answer" ussd_ucs2
check "gammu getussd, session ended by the network" ussd_ended
check "gammu sendsms, Spanish UCS-2 text" send_short
check "gammu sendsms, 3-part UCS-2 message" send_long
check "gammu getallsms/geteachsms, inbound short and 3-part" read_inbox

kill "$sim_pid"
wait "$sim_pid" 2>/dev/null || true
sim_pid=""
if [ -e "$tmp/modem" ] || [ -L "$tmp/modem" ]; then
    failed=$((failed + 1))
    echo "FAIL simulator removes its link on SIGTERM"
else
    passed=$((passed + 1))
    echo "ok   simulator removes its link on SIGTERM"
fi

echo "gammu: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
