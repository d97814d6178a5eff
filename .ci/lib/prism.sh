# Sourced by the Prism tiers (60, 65) from the repository's root: installs Prism
# (@stoplight/prism-cli 5.14.x, npm) into a cache dir and sets $prism; finds a pasarela binary
# built from this tree (a release one when tier 20 left it, else debug, built only when there is
# none) and sets $bin to its absolute path.
export CI=true
command -v curl >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >/dev/null; }
if ! command -v npm >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
prism_dir="${PRISM_DIR:-$HOME/.cache/pasarela-prism}"
mkdir -p "$prism_dir"
if [ ! -x "$prism_dir/node_modules/.bin/prism" ]; then
    (cd "$prism_dir" && npm install --no-audit --no-fund --loglevel=error @stoplight/prism-cli@~5.14.0 </dev/null)
fi
prism="$prism_dir/node_modules/.bin/prism"

target_dir="${CARGO_TARGET_DIR:-target}"
bin=""
for b in "$target_dir/release/pasarela" "$target_dir/debug/pasarela"; do
    if [ -x "$b" ] && [ "$b" -nt Cargo.toml ] && [ -z "$(find src -newer "$b" -name '*.rs' -print -quit)" ]; then
        bin="$b"
        break
    fi
done
if [ -z "$bin" ]; then
    cargo build --quiet
    bin="$target_dir/debug/pasarela"
fi
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
