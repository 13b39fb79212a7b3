#!/usr/bin/env bash
# A whole migration on this machine, for a first look: installs what is
# missing (Debian packages, without starting their services), builds
# hostmig, then runs `hostmig sandbox` (a generated source and an empty
# destination on private loopback ports; every client migrated through the
# API, verified, and left running until Ctrl-C). Arguments go to `hostmig
# sandbox` (--profile tiny|small|medium|large, --exit, --dir DIR, --keep).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "deploy/sandbox.sh: run as root (the sandbox's sshd logs in as root)" >&2
  exit 1
fi
bash deploy/install-deps.sh
if ! command -v cargo >/dev/null 2>&1; then
  echo "deploy/sandbox.sh: cargo is missing; install a Rust toolchain (rust-version in Cargo.toml) and run again" >&2
  exit 1
fi
cargo build --release --locked
exec ./target/release/hostmig sandbox "$@"
