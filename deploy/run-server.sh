#!/usr/bin/env bash
# Builds hostmig and runs the API server on https://127.0.0.1:8443 with a
# private state directory in ./.hostmig-dev/. On first run it makes an admin
# password (kept in .hostmig-dev/password, mode 0600) and its config.
# Installs missing Debian packages first (without starting services).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo >/dev/null 2>&1; then
  echo "deploy/run-server.sh: cargo is missing; install a Rust toolchain first" >&2
  exit 1
fi
if ! command -v cc >/dev/null 2>&1 || ! command -v pkg-config >/dev/null 2>&1; then
  [ "$(id -u)" -eq 0 ] || { echo "install gcc and pkg-config (Debian packages) first" >&2; exit 1; }
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gcc pkg-config >/dev/null
fi
cargo build --release --locked
dev="$PWD/.hostmig-dev"
mkdir -p "$dev"
chmod 700 "$dev"
if [ ! -s "$dev/password" ]; then
  (umask 077; head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$dev/password")
fi
if [ ! -s "$dev/hostmig.toml" ]; then
  hash=$(./target/release/hostmig hash-password <"$dev/password")
  cat >"$dev/hostmig.toml" <<TOML
[api]
listen = ["127.0.0.1:${HOSTMIG_PORT:-8443}"]
admin_password_hash = "$hash"

[state]
dir = "$dev/state"
TOML
fi
port=$(sed -n 's/^listen = \["127.0.0.1:\([0-9]*\)"\]/\1/p' "$dev/hostmig.toml")
cat <<TEXT
hostmig API on https://127.0.0.1:${port}/enterprise/control/agent.php (Ctrl-C stops it)
try, in another terminal:
  curl -sk https://127.0.0.1:${port}/enterprise/control/agent.php -H 'HTTP_AUTH_LOGIN: admin' \\
    -H "HTTP_AUTH_PASSWD: \$(cat $dev/password)" -H 'HTTP_PRETTY_PRINT: TRUE' \\
    -d '<packet><migration><check/><get_fs/></migration></packet>'
TEXT
exec ./target/release/hostmig serve --config "$dev/hostmig.toml"
