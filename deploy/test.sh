#!/usr/bin/env bash
# Installs what hostmig's tests need when it is missing (Debian packages,
# without starting any of their services: deploy/install-deps.sh), then
# runs every check: format, clippy with warnings as errors, and all tests.
set -euo pipefail
cd "$(dirname "$0")/.."

bash "$(dirname "$0")/install-deps.sh"

if ! command -v cargo >/dev/null 2>&1; then
  echo "deploy/test.sh: cargo is missing; install a Rust toolchain (rust-version in Cargo.toml) and run again" >&2
  exit 1
fi

cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked

# The tests' source hosts (network namespaces, veth links and their
# shaping) are gone with the tests; any whose owner is gone is a leak.
leaked=()
for ns in /run/netns/hostmig-sb-*; do
  [ -e "$ns" ] || continue
  slot=${ns##*-}
  owner=$(cat "/run/hostmig-sandbox/$slot" 2>/dev/null || true)
  pid=${owner%% *}
  if [ -z "$pid" ] || [ ! -d "/proc/$pid" ]; then leaked+=("$(basename "$ns")"); fi
done
for link in /sys/class/net/hmsb*d; do
  [ -e "$link" ] || continue
  slot=${link##*/hmsb}; slot=${slot%d}
  [ -e "/run/netns/hostmig-sb-$slot" ] || leaked+=("$(basename "$link")")
done
if [ ${#leaked[@]} -gt 0 ]; then
  echo "deploy/test.sh: the tests left network namespaces or links behind: ${leaked[*]}" >&2
  exit 1
fi
