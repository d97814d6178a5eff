#!/usr/bin/env bash
# Debian package tier: builds the amd64 .deb (release profile) and checks its contents and
# control files, lintian, the unit with systemd-analyze, then installs it on this machine and
# checks user, group, permissions and the generated token; runs the packaged daemon as user
# pasarela with a test NOTIFY_SOCKET until READY=1; reinstalls, upgrades, removes, reinstalls
# and purges. Then cross-builds the arm64 package with the release profile (what ships; its
# binary's size is checked like amd64's) and the armhf package with the quicker ci-cross profile
# (packaging/release.sh builds it with release), and runs the arm binaries under qemu-user. Needs root: it installs packages and creates the system user.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ "$(id -u)" -ne 0 ]; then
    echo "40-deb: needs root (dpkg -i, adduser, apt-get); CI runs as root" >&2
    exit 1
fi
tier_start=$SECONDS
# Figures (build times, sizes) go to fd 3, which stays the terminal inside checks.
exec 3>&1
bash packaging/install-build-deps.sh

target_dir="$(realpath -m "${CARGO_TARGET_DIR:-target}")"
export CARGO_TARGET_DIR="$target_dir"
tmp="$(mktemp -d)"
daemon_pid=""
listener_pid=""
cleanup() {
    for pid in $daemon_pid $listener_pid; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    # Leave the machine as it was: no pasarela package installed.
    dpkg --purge pasarela >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT

passed=0
failed=0
# Runs a check function in a subshell with errexit in force, so that every command in it counts
# (bash ignores `set -e` inside anything called from an `if` or `&&` condition).
check() {
    local name="$1" rc
    shift
    set +e
    (set -e; "$@") >"$tmp/out" 2>&1
    rc=$?
    set -e
    if [ "$rc" -eq 0 ]; then
        passed=$((passed + 1))
        echo "ok   $name"
    else
        failed=$((failed + 1))
        echo "FAIL $name"
        sed 's/^/     /' "$tmp/out"
    fi
}
# grep that reads all its input: `grep -q` after a pipe can kill the writer with SIGPIPE.
has() { grep "$@" >/dev/null; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# A previous run that died half-way may have left the package installed.
dpkg --purge pasarela >/dev/null 2>&1 || true

echo "== build amd64 (release profile)"
t=$SECONDS
bash packaging/build-deb.sh "$(rustc -vV | sed -n 's/^host: //p')" release "$tmp/deb" --quiet
# The same package with the next revision, for the upgrade (no rebuild).
bash packaging/build-deb.sh "$(rustc -vV | sed -n 's/^host: //p')" release "$tmp/deb2" \
    --quiet --no-build --deb-revision 2
deb="$(ls "$tmp"/deb/pasarela_*_amd64.deb)"
deb2="$(ls "$tmp"/deb2/pasarela_*_amd64.deb)"
echo "amd64 build: $((SECONDS - t)) s; binary $(stat -c %s "$target_dir/release/pasarela") bytes; $(basename "$deb") $(stat -c %s "$deb") bytes"

contents() {
    # Owners show as root/root or 0/0, depending on whether the archive names them.
    dpkg-deb -c "$deb" | awk '{o = $2; if (o == "root/root") o = "0/0"; print $1, o, $NF}' |
        tee "$tmp/contents"
    grep -qx -- '-rwxr-xr-x 0/0 ./usr/bin/pasarela' "$tmp/contents"
    grep -qx -- '-rw-r----- 0/0 ./etc/pasarela/pasarela.toml' "$tmp/contents"
    grep -qx -- '-rw-r--r-- 0/0 ./usr/lib/systemd/system/pasarela.service' "$tmp/contents"
    grep -qx -- '-rw-r--r-- 0/0 ./lib/udev/rules.d/77-pasarela-modemmanager.rules' "$tmp/contents"
    for doc in README.md copyright changelog.Debian.gz examples/pasarela.toml; do
        grep -q " ./usr/share/doc/pasarela/$doc\$" "$tmp/contents"
    done
    # The binary is stripped and small enough for a Pi's SD card.
    dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/bin/pasarela >"$tmp/bin"
    file -b "$tmp/bin" | tee /dev/stderr | has ', stripped$'
    # 12 MB read as 12 MiB, as `ls -lh` shows it.
    [ "$(stat -c %s "$tmp/bin")" -le $((12 * 1024 * 1024)) ]
}
control() {
    dpkg-deb -I "$deb" | tee "$tmp/info"
    [ "$(dpkg-deb -f "$deb" Package)" = pasarela ]
    [ "$(dpkg-deb -f "$deb" Architecture)" = amd64 ]
    # Dependencies computed by dpkg-shlibdeps, plus adduser for the maintainer scripts.
    dpkg-deb -f "$deb" Depends | tee /dev/stderr | has -E '^adduser, libc6 \(>= [0-9.]+\)$'
    dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles | tee /dev/stderr | has -x /etc/pasarela/pasarela.toml
    for script in postinst prerm postrm; do
        grep -Eq "^ +[0-9]+ bytes, +[0-9]+ lines +\* +$script " "$tmp/info"
    done
}
lint() {
    lintian --fail-on error -I "$deb"
}
check "dpkg-deb -c: files, modes, stripped binary <= 12 MiB" contents
check "dpkg-deb -I: control, computed depends, conffiles, maintainer scripts" control
check "lintian: no errors" lint

echo "== install"
install_first() {
    dpkg -i "$deb" </dev/null | tee "$tmp/install.log"
    grep -q 'generated an admin API token in /etc/pasarela/admin.token' "$tmp/install.log"
}
user_and_group() {
    getent passwd pasarela | tee /dev/stderr | has ':/var/lib/pasarela:/usr/sbin/nologin$'
    getent group pasarela
    id -nG pasarela | tee /dev/stderr | tr ' ' '\n' | has -x dialout
    [ "$(id -u pasarela)" -lt 1000 ]
}
permissions() {
    stat -c '%n %U:%G %a' /var/lib/pasarela /etc/pasarela /etc/pasarela/pasarela.toml \
        /etc/pasarela/admin.token | tee "$tmp/perms"
    diff - "$tmp/perms" <<'EOF'
/var/lib/pasarela pasarela:pasarela 750
/etc/pasarela root:pasarela 750
/etc/pasarela/pasarela.toml root:pasarela 640
/etc/pasarela/admin.token root:pasarela 640
EOF
}
token() {
    grep -Eqx '[0-9a-f]{48}' /etc/pasarela/admin.token
    sha256sum /etc/pasarela/admin.token >"$tmp/token.sum"
}
installed_files() {
    [ -x /usr/bin/pasarela ]
    [ -f /lib/systemd/system/pasarela.service ]
    [ -f /lib/udev/rules.d/77-pasarela-modemmanager.rules ]
    # Enabled for boot (deb-systemd-helper works without a running systemd).
    [ -L /etc/systemd/system/multi-user.target.wants/pasarela.service ]
    /usr/bin/pasarela version | has "^pasarela "
}
config_valid_for_service_user() {
    runuser -u pasarela -- /usr/bin/pasarela check-config /etc/pasarela/pasarela.toml
}
check "dpkg -i: installs and says where the token is" install_first
check "system user pasarela, group pasarela, member of dialout, no shell" user_and_group
check "permissions: state 0750 pasarela, config 0640 root:pasarela, token 0640" permissions
check "generated admin token: 48 hex characters" token
check "binary, unit, udev rule installed; unit enabled" installed_files
check "the shipped config validates as user pasarela" config_valid_for_service_user

verify_unit() {
    systemd-analyze verify /lib/systemd/system/pasarela.service >"$tmp/verify" 2>&1 || true
    cat "$tmp/verify"
    [ ! -s "$tmp/verify" ]
    # The check above would pass on a verify that checks nothing: a bad unit must show output.
    sed 's/^Type=notify$/Type=notify\nNoSuchSetting=1/' /lib/systemd/system/pasarela.service \
        >"$tmp/broken.service"
    systemd-analyze verify "$tmp/broken.service" 2>&1 | has NoSuchSetting
}
security() {
    systemd-analyze security --offline=true /lib/systemd/system/pasarela.service >"$tmp/security" 2>&1 || true
    grep -Ei 'exposure level' "$tmp/security" >&3
    score="$(sed -n 's/.*Overall exposure level for pasarela.service: \([0-9.]*\).*/\1/p' "$tmp/security")"
    [ -n "$score" ] && python3 -c "import sys; sys.exit(0 if float('$score') <= 2.5 else 1)"
}
check "systemd-analyze verify: nothing printed" verify_unit
check "systemd-analyze security --offline: exposure <= 2.5" security

reinstall_same() {
    dpkg -i "$deb" </dev/null
    sha256sum -c "$tmp/token.sum"
    permissions
}
check "dpkg -i again: idempotent, token kept" reinstall_same

echo "== run the packaged daemon as user pasarela"
# The operator's edit: another port (8080 may be taken on this machine), and the example modem
# turned on (the shipped config turns no route on). It must survive upgrades.
port="$(free_port)"
sed -i "s/^listen = \"127.0.0.1:8080\"/listen = \"127.0.0.1:$port\"/" /etc/pasarela/pasarela.toml
grep -q "^listen = \"127.0.0.1:$port\"" /etc/pasarela/pasarela.toml
sed -i -e 's/^#\[\[modem\]\]$/[[modem]]/' -e 's/^#name = "modem1"$/name = "modem1"/' \
    -e 's|^#device = "/dev/ttyUSB0"$|device = "/dev/ttyUSB0"|' /etc/pasarela/pasarela.toml
grep -qx '\[\[modem\]\]' /etc/pasarela/pasarela.toml
/usr/bin/pasarela check-config /etc/pasarela/pasarela.toml
notify_dir="$tmp/notify"
mkdir -p "$notify_dir"
chmod 0755 "$tmp" "$notify_dir"
python3 - "$notify_dir/sock" "$notify_dir/messages" <<'EOF' &
import os, socket, sys
path, out = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
os.chmod(path, 0o666)
while True:
    data = s.recv(4096)
    with open(out, "a") as f:
        f.write(data.decode(errors="replace") + "\n")
EOF
listener_pid=$!
for _ in $(seq 50); do [ -S "$notify_dir/sock" ] && break; sleep 0.1; done
token="$(cat /etc/pasarela/admin.token)"
# The unit's UMask=0027, so files come out as the service makes them.
umask 0027
NOTIFY_SOCKET="$notify_dir/sock" setpriv --reuid=pasarela --regid=pasarela --init-groups \
    --inh-caps=-all -- /usr/bin/pasarela run --config /etc/pasarela/pasarela.toml \
    >"$tmp/daemon.log" 2>&1 </dev/null &
daemon_pid=$!
umask 0022
ready() {
    for _ in $(seq 150); do
        grep -qx 'READY=1' "$notify_dir/messages" 2>/dev/null && return 0
        kill -0 "$daemon_pid" 2>/dev/null || break
        sleep 0.2
    done
    cat "$tmp/daemon.log"
    return 1
}
running_as_pasarela() {
    ps -o user=,group=,supgrp= -p "$daemon_pid" | tee /dev/stderr | has '^pasarela *pasarela .*dialout'
    stat -c '%U:%G %a' /var/lib/pasarela/pasarela.db | tee /dev/stderr | has '^pasarela:pasarela 640$'
}
api_without_modem() {
    curl -sf "http://127.0.0.1:$port/api/health" | has '"status":"ok"'
    # No modem on this machine: the daemon runs on, reporting it and retrying.
    curl -sf -H "Authorization: Bearer $token" "http://127.0.0.1:$port/api/status" | tee /dev/stderr |
        python3 -c 'import json,sys; t=json.load(sys.stdin)["transports"][0]; sys.exit(0 if t["name"]=="modem1" and not t["up"] and "not found" in t["detail"] else 1)'
}
doctor_installed() {
    /usr/bin/pasarela doctor >"$tmp/doctor" 2>&1 && rc=0 || rc=$?
    cat "$tmp/doctor"
    [ "$rc" -eq 1 ]
    grep -q '^ok   config /etc/pasarela/pasarela.toml is valid (token from file)' "$tmp/doctor"
    grep -q '^ok   state dir /var/lib/pasarela is writable by pasarela' "$tmp/doctor"
    grep -q '^FAIL modem1: device /dev/ttyUSB0 not found' "$tmp/doctor"
    grep -q "^ok   admin API answers on http://127.0.0.1:$port" "$tmp/doctor"
}
stops() {
    [ "$daemon_rc" -eq 0 ]
    grep -qx 'STOPPING=1' "$notify_dir/messages"
}
check "pasarela run as user pasarela: READY=1 on NOTIFY_SOCKET without a modem" ready
check "runs as pasarela with group dialout; database 0640 in /var/lib/pasarela" running_as_pasarela
check "admin API answers; the missing modem is reported, not fatal" api_without_modem
check "pasarela doctor on the installed box" doctor_installed
kill -TERM "$daemon_pid" 2>/dev/null || true
daemon_rc=0
wait "$daemon_pid" || daemon_rc=$?
daemon_pid=""
check "SIGTERM: STOPPING=1 and exit 0" stops
kill "$listener_pid" 2>/dev/null || true
wait "$listener_pid" 2>/dev/null || true
listener_pid=""

upgrade() {
    dpkg -i "$deb2" </dev/null
    [ "$(dpkg-query -W -f='${Version}' pasarela)" = "$(dpkg-deb -f "$deb2" Version)" ]
    grep -q "^listen = \"127.0.0.1:$port\"" /etc/pasarela/pasarela.toml
    [ ! -e /etc/pasarela/pasarela.toml.dpkg-new ]
    [ ! -e /etc/pasarela/pasarela.toml.dpkg-dist ]
    sha256sum -c "$tmp/token.sum"
    [ -f /var/lib/pasarela/pasarela.db ]
    permissions
}
remove_keeps_config_and_state() {
    dpkg -r pasarela </dev/null
    [ ! -e /usr/bin/pasarela ]
    [ ! -e /lib/systemd/system/pasarela.service ]
    grep -q "^listen = \"127.0.0.1:$port\"" /etc/pasarela/pasarela.toml
    [ -f /var/lib/pasarela/pasarela.db ]
    dpkg -i "$deb2" </dev/null
    sha256sum -c "$tmp/token.sum"
    permissions
}
purge_leaves_nothing() {
    dpkg --purge pasarela </dev/null
    if dpkg-query -W -f='${Status}' pasarela 2>/dev/null | has 'ok installed$'; then return 1; fi
    left="$(find /etc /var/lib /usr /lib /run -xdev -name '*pasarela*' \
        -not -path "$target_dir/*" -not -path "$PWD/*" -not -path '/usr/local/cargo/*' \
        -not -path "$HOME/*" 2>/dev/null || true)"
    echo "left behind: ${left:-nothing}"
    [ -z "$left" ]
    # The system user stays, as Debian does for system users (see packaging/debian/postrm).
    getent passwd pasarela
}
reinstall_after_purge() {
    dpkg -i "$deb" </dev/null | has 'generated an admin API token'
    if sha256sum -c "$tmp/token.sum" >/dev/null 2>&1; then return 1; fi
    permissions
    dpkg --purge pasarela </dev/null
}
check "upgrade to the next revision: the edited conffile and the token survive" upgrade
check "dpkg -r keeps config and state; reinstall works" remove_keeps_config_and_state
check "dpkg --purge: package, config, token, state and unit links gone" purge_leaves_nothing
check "install after purge: a fresh token" reinstall_after_purge

echo "== Raspberry Pi packages (arm64 with the release profile, whose size is checked; armhf with ci-cross)"
cross() {
    local triple="$1" arch="$2" qemu="$3" sysroot="$4" profile="$6"
    local t=$SECONDS
    bash packaging/build-deb.sh "$triple" "$profile" "$tmp/$arch" --quiet
    local pkg bin
    pkg="$(ls "$tmp/$arch"/pasarela_*_"$arch".deb)"
    bin="$target_dir/$triple/$profile/pasarela"
    echo "$arch build: $((SECONDS - t)) s; binary $(stat -c %s "$bin") bytes; $(basename "$pkg") $(stat -c %s "$pkg") bytes" >&3
    [ "$(dpkg-deb -f "$pkg" Architecture)" = "$arch" ]
    dpkg-deb -f "$pkg" Depends | has 'libc6'
    dpkg-deb --ctrl-tarfile "$pkg" | tar -xO ./conffiles | has -x /etc/pasarela/pasarela.toml
    file "$bin" | tee /dev/stderr | has "$5"
    "$qemu" -L "$sysroot" "$bin" version | has '^pasarela '
    # The shipped profile's binary fits the same 12 MiB as amd64's.
    if [ "$profile" = release ]; then
        [ "$(stat -c %s "$bin")" -le $((12 * 1024 * 1024)) ]
    fi
}
qemu_arm64_runs() {
    local bin="$target_dir/aarch64-unknown-linux-gnu/release/pasarela"
    local q=(qemu-aarch64 -L /usr/aarch64-linux-gnu)
    "${q[@]}" "$bin" check-config config/pasarela.toml
    local api sim
    api="$(free_port)"
    sim="$(free_port)"
    "${q[@]}" "$bin" demo --dir "$tmp/qemu-demo" --listen "127.0.0.1:$api" \
        --sim-control "127.0.0.1:$sim" --token qemu-demo-token-0123456789 >"$tmp/qemu-demo.log" 2>&1 &
    local pid=$!
    local up=0
    for _ in $(seq 300); do
        if curl -sf "http://127.0.0.1:$api/api/health" >/dev/null; then up=1; break; fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    if [ "$up" = 1 ]; then
        curl -sf -H 'Authorization: Bearer qemu-demo-token-0123456789' \
            -d '{"to":"011 15-2345-6789","text":"Prueba desde un Pi"}' "http://127.0.0.1:$api/api/messages" >/dev/null
        for _ in $(seq 150); do
            curl -sf "http://127.0.0.1:$sim/sent" | has 'Prueba desde un Pi' && break
            sleep 0.2
        done
        if ! curl -sf "http://127.0.0.1:$sim/sent" | has 'Prueba desde un Pi'; then
            # Debian 12's qemu-user (7.2) does not emulate the TCGETS2/TCSETS2 ioctls the serial
            # port library sets the line with (a Pi's kernel has them), so under emulation the
            # simulated modem cannot be opened: the message must then be accepted and waiting,
            # and the log must name exactly that error, nothing else.
            grep -q 'modem1: cannot open .*Function not implemented' "$tmp/qemu-demo.log" || up=0
            curl -sf -H 'Authorization: Bearer qemu-demo-token-0123456789' \
                "http://127.0.0.1:$api/api/messages" | has 'Prueba desde un Pi' || up=0
            echo "qemu-user cannot open the pty (no TCGETS2): message accepted and queued"
        fi
    fi
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" && rc=0 || rc=$?
    cat "$tmp/qemu-demo.log"
    [ "$up" = 1 ]
    [ "$rc" -eq 0 ]
}
check "arm64 .deb builds (release profile); its stripped binary <= 12 MiB runs under qemu-aarch64" \
    cross aarch64-unknown-linux-gnu arm64 qemu-aarch64 /usr/aarch64-linux-gnu 'ARM aarch64' release
check "arm64 under qemu: check-config, demo takes an SMS (sent, or queued where qemu cannot open the pty) and stops on SIGTERM" qemu_arm64_runs
check "armhf .deb builds; its binary runs under qemu-arm" \
    cross armv7-unknown-linux-gnueabihf armhf qemu-arm /usr/arm-linux-gnueabihf 'ARM, EABI5' ci-cross

echo "40-deb tier: $((SECONDS - tier_start)) s"
echo "deb: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
