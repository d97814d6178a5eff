#!/usr/bin/env bash
# WhatsApp tier: Prism (@stoplight/prism-cli 5.14.x) serves Meta's published OpenAPI document
# (business-messaging-api v23.0) as a validating mock; pasarela sends a session text, a
# template and a template with a PDF document header through it, and every request must pass
# Prism's validation (a violation answers 422 and the message fails). The document is copied
# and relaxed here (see the README's "Testing" section); ../shared/specs is never edited.
set -euo pipefail

cd "$(dirname "$0")/../.."
root="$(pwd)"
spec="${WHATSAPP_SPEC:-$root/../shared/specs/whatsapp-business-messaging-api_v23.0.yaml}"
[ -f "$spec" ] || spec="/work/shared/specs/whatsapp-business-messaging-api_v23.0.yaml"
[ -f "$spec" ] || { echo "whatsapp tier: the Meta document is missing ($spec)"; exit 1; }

# Prism, and the binary under test ($prism, $bin).
source .ci/lib/prism.sh

tmp="$(mktemp -d)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT

# The relaxed copy: each change is listed in the README's testing section.
python3 - "$spec" "$tmp/spec.yaml" <<'PY'
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
# 1. LanguageObject: Meta accepts a language without `policy`; the document requires it.
old = "    LanguageObject:\n      type: object\n      required:\n      - policy\n      - code\n"
assert old in text, "LanguageObject block changed upstream"
text = text.replace(old, "    LanguageObject:\n      type: object\n      required:\n      - code\n", 1)
open(sys.argv[2], "w", encoding="utf-8").write(text)
PY

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
prism_port="$(free_port)"
"$prism" mock -h 127.0.0.1 -p "$prism_port" "$tmp/spec.yaml" >"$tmp/prism.log" 2>&1 &
pids+=($!)
for _ in $(seq 300); do
    curl -s -o /dev/null "http://127.0.0.1:$prism_port/" && break
    sleep 0.2
done

# Control: Prism validates (a message without `to` is refused), so passing below means something.
ctrl="$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer x' -H 'content-type: application/json' \
    -d '{"messaging_product":"whatsapp","type":"text","text":{"body":"x"}}' \
    "http://127.0.0.1:$prism_port/v23.0/1234567890/messages")"
[ "$ctrl" = 422 ] || { echo "whatsapp tier: Prism did not refuse an invalid request ($ctrl)"; exit 1; }

# The billing system's PDF: pasarela fetches the link before sending it (a PDF, under the cap).
mkdir -p "$tmp/files"
printf '%%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%%%EOF\n' >"$tmp/files/1234.pdf"
files_port="$(free_port)"
python3 -m http.server "$files_port" --bind 127.0.0.1 --directory "$tmp/files" >"$tmp/files.log" 2>&1 &
pids+=($!)

admin_port="$(free_port)"
hook_port="$(free_port)"
token="whatsapp-tier-token-0123456789"
secret="tier-app-secret"
cat >"$tmp/pasarela.toml" <<TOML
[daemon]
state_dir = "$tmp/state"
[admin]
listen = "127.0.0.1:$admin_port"
token = "$token"
[dispatch]
retry_base_secs = 1
retry_max_secs = 1
max_attempts = 2
[webhooks]
listen = "127.0.0.1:$hook_port"
[whatsapp]
phone_number_id = "1234567890"
waba_id = "9876543210"
access_token = "EAAG-tier-token-0123456789"
app_secret = "$secret"
verify_token = "tier-verify"
base_url = "http://127.0.0.1:$prism_port"
TOML
"$bin" check-config "$tmp/pasarela.toml" >/dev/null
"$bin" run --config "$tmp/pasarela.toml" >"$tmp/pasarela.log" 2>&1 &
pids+=($!)
api="http://127.0.0.1:$admin_port"
for _ in $(seq 100); do
    curl -sf "$api/api/health" >/dev/null 2>&1 && break
    sleep 0.1
done

# The customer writes first (a signed webhook), so a session text may go.
body='{"object":"whatsapp_business_account","entry":[{"id":"9876543210","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","contacts":[{"wa_id":"5491123456789"}],"messages":[{"from":"5491123456789","id":"wamid.TIER1","timestamp":"1764633600","type":"text","text":{"body":"hola"}}]}}]}]}'
sig="sha256=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$secret" -r | cut -d' ' -f1)"
code="$(curl -s -o /dev/null -w '%{http_code}' -H 'content-type: application/json' -H "X-Hub-Signature-256: $sig" \
    --data-binary "$body" "http://127.0.0.1:$hook_port/webhooks/whatsapp")"
[ "$code" = 200 ] || { echo "whatsapp tier: the signed webhook got $code"; exit 1; }

send() {
    curl -sf -H "Authorization: Bearer $token" -H 'content-type: application/json' -d "$1" "$api/api/messages" \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'
}
ids=(
    "$(send '{"to":"+5491123456789","channel":"whatsapp","text":"Hola, su saldo es $ 1.234,50"}')"
    "$(send '{"to":"+5491123456789","channel":"whatsapp","template":{"name":"aviso_corte","language":"es_AR","body":["Centro","10/12"]}}')"
    "$(send '{"to":"+5491123456789","channel":"whatsapp","template":{"name":"comprobantes","language":"es_AR","body":["Ana","$ 1.234,50","10/12/2026"],"document":{"url":"http://127.0.0.1:'"$files_port"'/1234.pdf","filename":"factura.pdf"}}}')"
)
state_of() { curl -sf -H "Authorization: Bearer $token" "$api/api/messages/$1"; }
failed=0
for id in "${ids[@]}"; do
    s=""
    for _ in $(seq 150); do
        s="$(state_of "$id" | python3 -c 'import json,sys; m=json.load(sys.stdin); print(m["state"], m.get("provider_ref") or "", m.get("last_error") or "")')"
        case "$s" in sent*|delivered*|failed*) break ;; esac
        sleep 0.2
    done
    case "$s" in
        sent\ ?*) echo "whatsapp tier: message $id accepted by the document (${s#sent })" ;;
        *) echo "whatsapp tier: message $id: $s"; failed=1 ;;
    esac
done
if grep -q '"level":50\|violation\|422' "$tmp/prism.log" && [ "$failed" = 1 ]; then
    echo "--- prism log ---"; tail -40 "$tmp/prism.log"
fi
if [ "$failed" = 1 ]; then
    echo "--- pasarela log ---"; tail -20 "$tmp/pasarela.log"
    exit 1
fi
echo "whatsapp tier: 3 of 3 messages passed Prism's validation"
