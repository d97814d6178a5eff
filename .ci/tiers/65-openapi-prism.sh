#!/usr/bin/env bash
# OpenAPI tier: the real API checked against its own published document. `pasarela demo` runs;
# its /api/openapi.json (fetched without a token) is loaded into Prism (@stoplight/prism-cli
# 5.14.x) as a validating proxy in front of it (`prism proxy --errors`), and every curl example
# of the README that calls the admin API is replayed through it, then a set of bad requests.
# With --errors, an answer the document does not describe (an undocumented status, a body that
# does not match its schema, an undocumented content type) comes back as Prism's 500
# application/problem+json "VIOLATIONS" instead, and fails the tier. A control run first
# checks that Prism really refuses a broken document.
set -euo pipefail

cd "$(dirname "$0")/../.."
root="$(pwd)"
started=$(date +%s)

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

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
api_port="$(free_port)"; sim_port="$(free_port)"
token="openapi-tier-token-0123456789"
"$bin" demo --dir "$tmp/demo" --listen "127.0.0.1:$api_port" --sim-control "127.0.0.1:$sim_port" \
    --token "$token" >"$tmp/demo.log" 2>&1 &
pids+=($!)
upstream="http://127.0.0.1:$api_port"
for _ in $(seq 150); do curl -sf "$upstream/api/health" >/dev/null 2>&1 && break; sleep 0.2; done
curl -sf "$upstream/api/health" >/dev/null || { echo "openapi tier: the demo did not start"; cat "$tmp/demo.log"; exit 1; }

# The document, as a client generator gets it: no token.
curl -sf "$upstream/api/openapi.json" -o "$tmp/openapi.json"
python3 - "$tmp/openapi.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
assert doc["openapi"].startswith("3.1"), doc["openapi"]
print(f"openapi tier: document {doc['openapi']}, {len(doc['paths'])} paths, "
      f"{sum(1 for p in doc['paths'].values() for m in p if m in ('get','post','put','delete','patch'))} operations")
PY

start_prism() { # port, document, extra args...
    local port="$1" doc="$2"
    shift 2
    "$prism" proxy -h 127.0.0.1 -p "$port" --errors "$@" "$doc" "$upstream" >"$tmp/prism-$port.log" 2>&1 &
    pids+=($!)
}
wait_prism() {
    for _ in $(seq 300); do
        curl -s -o /dev/null "http://127.0.0.1:$1/api/health" && return 0
        sleep 0.2
    done
    echo "openapi tier: Prism on $1 did not start"; cat "$tmp/prism-$1.log"; exit 1
}

# Control: a copy of the document whose health answer says `status` is a number. Prism must
# turn pasarela's real answer into a violation, or passing below would mean nothing.
python3 - "$tmp/openapi.json" "$tmp/broken.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
doc["components"]["schemas"]["Health"]["properties"]["status"] = {"type": "integer"}
json.dump(doc, open(sys.argv[2], "w"))
PY
strict="$(free_port)"; loose="$(free_port)"; broken="$(free_port)"
start_prism "$strict" "$tmp/openapi.json"
# Request validation off: the bad requests below must reach pasarela (with it on, Prism answers
# them itself); its answers are still checked against the document.
start_prism "$loose" "$tmp/openapi.json" --validate-request=false
start_prism "$broken" "$tmp/broken.json"
wait_prism "$strict"; wait_prism "$loose"; wait_prism "$broken"
ctrl="$(curl -s -o "$tmp/ctrl" -w '%{http_code}' "http://127.0.0.1:$broken/api/health")"
if [ "$ctrl" != 500 ] || ! grep -q VIOLATIONS "$tmp/ctrl"; then
    echo "openapi tier: Prism did not refuse an answer the document does not describe ($ctrl)"
    cat "$tmp/ctrl"; exit 1
fi

# The replay. Each request: the answer must be one the document describes (no Prism problem
# document), and where the script expects a status, that status.
mkdir -p "$tmp/work"
cd "$tmp/work"
STRICT="http://127.0.0.1:$strict" LOOSE="http://127.0.0.1:$loose" UPSTREAM="$upstream" \
    TOKEN="$token" python3 - "$root/README.md" <<'PY'
import json, os, re, shlex, subprocess, sys

STRICT, LOOSE, UPSTREAM, TOKEN = (os.environ[k] for k in ("STRICT", "LOOSE", "UPSTREAM", "TOKEN"))
readme = open(sys.argv[1], encoding="utf-8").read()
passed, failed = 0, []


def run(args, label, expect=None, via=STRICT):
    """curl through Prism; checks the answer is a documented one."""
    global passed
    args = list(args)
    if "-o" not in args:
        args += ["-o", "body.out"]
    args += ["-sS", "-D", "headers.out", "-w", "%{http_code}"]
    args = [a.replace("@PRISM@", via) for a in args]
    out = subprocess.run(["curl"] + args, capture_output=True, text=True, timeout=60)
    status = out.stdout.strip()
    headers = open("headers.out", encoding="latin-1").read().lower()
    body_file = args[args.index("-o") + 1]
    body = open(body_file, "rb").read()[:600].decode("utf-8", "replace") if os.path.exists(body_file) else ""
    problem = "application/problem+json" in headers
    bad = problem or (expect is not None and status not in expect)
    print(f"  {'FAIL' if bad else 'ok  '} {status} {label}")
    if bad:
        failed.append(label)
        print(f"       expected {expect}; answer: {body}")
    else:
        passed += 1
    return status, body


# 1. Every curl line of the README that calls the admin API, in the README's order.
#    $API, $TOKEN, $T, <token> and http://127.0.0.1:8080 are the demo's, through Prism. A body
#    sent with -d gets `Content-Type: application/json` (curl's shorthand sends a form type;
#    pasarela reads the body as JSON either way, the document says application/json).
csv = re.search(r"```csv\n(codigo;nombre.*?)```", readme, re.S).group(1)
open("clientes.csv", "w", encoding="utf-8").write(csv)
commands = []
for block in re.findall(r"```sh\n(.*?)```", readme, re.S):
    lines = block.split("\n")
    i = 0
    while i < len(lines):
        if lines[i].lstrip().startswith("curl "):
            text = lines[i]
            while True:
                joined = text.replace("\\\n", " ")
                try:
                    tokens = shlex.split(joined, comments=True)
                    complete = not joined.rstrip().endswith("\\")
                except ValueError:
                    complete = False
                if complete or i + 1 >= len(lines):
                    break
                i += 1
                text += "\n" + lines[i]
            commands.append(tokens)
        i += 1
replayed = 0
for tokens in commands:
    line = " ".join(tokens)
    if "127.0.0.1:8081" in line:  # the modem simulator's control API, not pasarela's
        continue
    args, label = [], []
    k = 1
    while k < len(tokens):
        t = tokens[k]
        if t == ">":  # `> rules.json`
            args += ["-o", tokens[k + 1]]
            k += 2
            continue
        t = (t.replace("$API", "@PRISM@/api").replace("$TOKEN", TOKEN).replace("$T", TOKEN)
              .replace("<token>", TOKEN).replace("http://127.0.0.1:8080", "@PRISM@"))
        args.append(t)
        k += 1
    if not any("@PRISM@" in a for a in args):
        continue
    sends_body = any(a in ("-d", "--data", "--data-binary") for a in args)
    if sends_body and not any(a.lower().startswith("content-type") for a in args):
        args += ["-H", "Content-Type: application/json"]
    url = next(a for a in args if "@PRISM@" in a).replace("@PRISM@", "")
    method = next((args[j + 1] for j, a in enumerate(args) if a == "-X"), "POST" if sends_body else "GET")
    run(args, f"README: {method} {url}")
    replayed += 1
print(f"openapi tier: {replayed} README examples replayed")
if replayed < 30:
    failed.append(f"only {replayed} README examples found: the extraction broke")

# 2. More good requests: the routes the README shows no curl for.
auth = ["-H", f"Authorization: Bearer {TOKEN}"]
json_h = ["-H", "Content-Type: application/json"]
st, body = run(auth + json_h + ["-d", '{"to":"+54 9 11 2345-6780","text":"Prueba OpenAPI"}', "@PRISM@/api/messages"],
               "POST /api/messages", {"202"})
msg = json.loads(body)["id"] if st == "202" else 1
run(auth + [f"@PRISM@/api/messages/{msg}"], "GET /api/messages/{id}", {"200"})
run(auth + ["@PRISM@/api/messages?direction=out&limit=2"], "GET /api/messages (filters)", {"200"})
run(auth + ["@PRISM@/api/openapi.json"], "GET /api/openapi.json", {"200"})
run(auth + ["@PRISM@/metrics"], "GET /metrics", {"200"})
run(auth + ["@PRISM@/api/customers?code=1001"], "GET /api/customers?code=", {"200"})
run(auth + ["@PRISM@/api/customers?q=a"], "GET /api/customers?q=", {"200"})
run(auth + ["@PRISM@/api/tickets?state=open&limit=5"], "GET /api/tickets", {"200"})
run(auth + ["@PRISM@/api/outages"], "GET /api/outages", {"200"})
run(auth + ["@PRISM@/api/campaigns"], "GET /api/campaigns", {"200"})
run(auth + json_h + ["-d", '{"name":"x","channel":"sms","template":"Hola %nombre%"}', "@PRISM@/api/campaigns/preview"],
    "POST /api/campaigns/preview", {"200"})
st, body = run(auth + json_h + ["-d", '{"name":"Aviso","channel":"sms","template":"Hola %nombre%, aviso de prueba."}',
                                "@PRISM@/api/campaigns"], "POST /api/campaigns", {"201"})
camp = json.loads(body)["id"] if st == "201" else 1
run(auth + ["-X", "POST", f"@PRISM@/api/campaigns/{camp}/cancel"], "POST /api/campaigns/{id}/cancel", {"200"})
run(auth + [f"@PRISM@/api/campaigns/{camp}/report.csv"], "GET /api/campaigns/{id}/report.csv", {"200"})
run(auth + ["@PRISM@/api/email/templates/payment"], "GET /api/email/templates/{kind}", {"200"})
run(auth + ["@PRISM@/api/whatsapp/usage"], "GET /api/whatsapp/usage", {"200"})
run(auth + ["@PRISM@/api/whatsapp/templates"], "GET /api/whatsapp/templates", {"200"})
run(auth + json_h + ["-d", '{"code":"*444#"}', "@PRISM@/api/modems/modem1/ussd"],
    "POST /api/modems/{name}/ussd (the demo's simulated SIM credit)", {"200"})
run(["@PRISM@/api/health"], "GET /api/health (no token)", {"200"})

# 3. Bad requests: each must get the documented error. Those Prism would refuse itself
#    (the body or a parameter breaks the document) go through the proxy without request checks.
run(["-H", "Authorization: Bearer wrong-token-0123456789", "@PRISM@/api/status"], "wrong token", {"401"})
run(auth + json_h + ["-d", '{"to":', "@PRISM@/api/messages"], "malformed JSON", {"400"}, LOOSE)
run(auth + json_h + ["-d", "", "@PRISM@/api/messages"], "empty body", {"400"}, LOOSE)
run(auth + json_h + ["-d", '{"to":"1123456789","text":"x","colour":"red"}', "@PRISM@/api/messages"],
    "unknown field", {"400"}, LOOSE)
run(auth + json_h + ["-d", '{"to":"no es un número","text":"x"}', "@PRISM@/api/messages"], "bad phone number", {"400"})
run(auth + json_h + ["-d", '{"code":"saldo"}', "@PRISM@/api/modems/modem1/ussd"], "bad USSD code", {"400"}, LOOSE)
run(auth + json_h + ["-d", '{"code":"*444#"}', "@PRISM@/api/modems/nadie/ussd"], "unknown modem", {"404"})
run(auth + json_h + ["-d", '{"messages":[]}', "@PRISM@/api/messages/batch"], "empty batch", {"400"})
run(auth + json_h + ["-d", '{"messages":[{"to":"1123456789","text":"ok"},{"to":"x","text":""}]}',
                     "@PRISM@/api/messages/batch"], "batch with a bad item", {"422"})
run(auth + json_h + ["-d", '{"to":"1123456789","text":"' + "x" * 70000 + '"}', "@PRISM@/api/messages"],
    "body over the limit", {"413"}, LOOSE)
run(auth + ["@PRISM@/api/messages/999999"], "unknown message id", {"404"})
run(auth + ["@PRISM@/api/messages/abc"], "message id not a number", {"400"})
run(auth + ["-X", "POST", f"@PRISM@/api/messages/{msg}/cancel"], "cancel a message already sent", {"409", "200"})
run(auth + ["@PRISM@/api/messages?state=lost"], "unknown state filter", {"400"})
run(auth + ["@PRISM@/api/messages?colour=red"], "unknown query parameter (messages)", {"400"}, LOOSE)
run(auth + ["@PRISM@/api/tickets?colour=red"], "unknown query parameter (tickets, plain text)", {"400"}, LOOSE)
run(auth + ["@PRISM@/api/tickets/abc"], "ticket id not a number (plain text)", {"400"}, LOOSE)
run(auth + ["@PRISM@/api/tickets/999999"], "unknown ticket", {"404"})
run(auth + ["@PRISM@/api/outages/999999"], "unknown outage", {"404"})
run(auth + ["-X", "POST", "@PRISM@/api/campaigns/999999/start"], "unknown campaign", {"404"})
run(auth + ["-X", "POST", f"@PRISM@/api/campaigns/{camp}/pause"], "pause a cancelled campaign", {"409"})
run(auth + json_h + ["-d", '{"id":"e-1","type":"payment","customer":"no-such","amount":"10","method":"manual"}', "@PRISM@/api/events"],
    "event for an unknown customer", {"422"})
run(auth + json_h + ["-d", '{"zones":["ningun-lugar"],"message":"x"}', "@PRISM@/api/outages"],
    "outage of a zone with no customers", {"422"})
run(auth + ["-H", "Content-Type: application/json", "--data-binary", "[]", "@PRISM@/api/customers/import"],
    "customers import as JSON", {"415"}, LOOSE)
run(auth + json_h + ["-X", "PUT", "-d", "[]", "@PRISM@/api/rules"], "rules that are not an object", {"400"}, LOOSE)
run(auth + json_h + ["-X", "PUT", "-d", '{"subject":"s","text":"%no_such_variable%"}', "@PRISM@/api/email/templates/invoice"],
    "mail template with an unknown variable", {"400"})
run(auth + ["@PRISM@/api/email/templates/nope"], "unknown mail template kind", {"400"})
run(auth + ["-X", "POST", "@PRISM@/api/whatsapp/templates/sync"], "WhatsApp sync without WhatsApp", {"409"})

# Without a token Prism answers 401 itself (the document requires the bearer scheme), so
# pasarela's own answer is checked directly.
out = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", f"{UPSTREAM}/api/status"], capture_output=True, text=True)
body, status = out.stdout.rsplit("\n", 1)
ok = status == "401" and json.loads(body)["error"]["code"] == "unauthorized"
print(f"  {'ok  ' if ok else 'FAIL'} {status} missing token (pasarela directly)")
passed += ok
if not ok:
    failed.append("missing token")

print(f"openapi tier: {passed} passed, {len(failed)} failed")
if failed:
    print("failed: " + "; ".join(failed))
    sys.exit(1)
PY
cd "$root"
echo "openapi tier: done in $(( $(date +%s) - started )) s"
