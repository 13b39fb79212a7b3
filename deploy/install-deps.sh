#!/usr/bin/env bash
# Installs the Debian packages hostmig's tests, sandbox and benchmarks use
# when they are missing, without starting any of their services (a
# temporary policy-rc.d answers 101). Run as root; does nothing when all
# are there.
set -euo pipefail

# Debian packages the tests use, as "file-or-command package" pairs: the
# sandbox's private sshd and MariaDB servers, the network namespace, link
# and shaping of the sandbox's source host (ip, tc), the peers the
# benchmarks measure, xmllint for the schemas, headless Chromium and its
# WebDriver for the status page's test, and what the build links.
needs=(
  "/usr/sbin/sshd openssh-server"
  "ssh-keygen openssh-client"
  "/usr/sbin/mariadbd mariadb-server"
  "mariadb mariadb-client"
  "mariadb-tzinfo-to-sql mariadb-client"
  "/usr/share/zoneinfo/Europe/Berlin tzdata"
  "mysqldump mariadb-client"
  "/usr/sbin/ip iproute2"
  "/usr/sbin/tc iproute2"
  "rsync rsync"
  "mydumper mydumper"
  "xmllint libxml2-utils"
  "zstd zstd"
  "gzip gzip"
  "/usr/include/zstd.h libzstd-dev"
  "/usr/bin/chromium chromium"
  "/usr/bin/chromedriver chromium-driver"
  "pkg-config pkg-config"
  "/usr/include/openssl/ssl.h libssl-dev"
  "cc gcc"
)

missing=()
for pair in "${needs[@]}"; do
  read -r what pkg <<<"$pair"
  case "$what" in
    /*) [ -e "$what" ] || missing+=("$pkg") ;;
    *) command -v "$what" >/dev/null 2>&1 || missing+=("$pkg") ;;
  esac
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deploy/install-deps.sh: installing ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "deploy/install-deps.sh: run as root, or install these Debian packages first: ${missing[*]}" >&2
    exit 1
  fi
  # A policy-rc.d that answers 101 keeps the packages' services from starting.
  policy=/usr/sbin/policy-rc.d
  backup=""
  if [ -e "$policy" ]; then backup=$(mktemp); cp -p "$policy" "$backup"; fi
  restore() { if [ -n "$backup" ]; then mv "$backup" "$policy"; else rm -f "$policy"; fi; }
  trap restore EXIT
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  apt-get update -qq
  # shellcheck disable=SC2046
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${missing[@]}" | sort -u) >/dev/null
  restore
  trap - EXIT
fi

