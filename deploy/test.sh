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
