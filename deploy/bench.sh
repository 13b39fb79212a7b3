#!/usr/bin/env bash
# The whole benchmark set, on an otherwise idle machine: content by each
# transport, resync, database copy on three links (each beside the tools
# an operator would use instead, in the same run), the database
# catch-up against a full copy, 8 parallel
# client migrations, and the API under load. Writes
# target/bench/table.txt (the tables as printed) and target/bench/table.json
# (every benchmark's JSON), with the date and the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
out=target/bench
mkdir -p "$out"
text="$out/table.txt"
{
  echo "hostmig benchmarks, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(. /etc/os-release; echo "$PRETTY_NAME")"
  echo
} >"$text"
run() {
  local name=$1; shift
  echo "== $name" | tee -a "$text"
  # The run's report without build lines, per-migration timelines and the
  # sandbox sshd's debug lines that reach the peers' stderr.
  "$@" 2>&1 | tee "$out/$name.log" | grep -v -E '^ +migration |^debug1: |^ *(Compiling|Finished|Running|Blocking|Downloaded|Updating) ' | tee -a "$text"
  echo >>"$text"
}
# Content and databases on each link (HOSTMIG_BENCH_LINKS, default all
# three): lan (the source's own host, unshaped), 1gbit and 100mbit (shaped
# with tc), the source's processes on the last core, the destination's on
# the others; the `medium` fixture (over 300 MiB of content, 500,000 rows);
# 3 content rounds (HOSTMIG_BENCH_ROUNDS), so that the median is one round.
links=${HOSTMIG_BENCH_LINKS:-lan,1gbit,100mbit}
for link in ${links//,/ }; do
  case "$link" in
    lan) mbit="" ;;
    1gbit) mbit=1000 ;;
    100mbit) mbit=100 ;;
    *) echo "HOSTMIG_BENCH_LINKS: unknown link $link (lan, 1gbit, 100mbit)" >&2; exit 2 ;;
  esac
  run "sandbox-$link" env HOSTMIG_BENCH_PROFILE=medium HOSTMIG_BENCH_PIN=1 HOSTMIG_BENCH_ROUNDS="${HOSTMIG_BENCH_ROUNDS:-3}" \
    HOSTMIG_BENCH_LINK_MBIT="$mbit" HOSTMIG_BENCH_LINK_NAME="$link" cargo bench --locked --bench sandbox
done
run db-resync env HOSTMIG_BENCH_PROFILE=large cargo bench --locked --bench db_resync
run engine cargo bench --locked --bench engine
run api cargo bench --locked --bench api
{
  printf '{"date":"%s","cores":%s,"benchmarks":[' "$(date -u '+%Y-%m-%dT%H:%M:%SZ')" "$(nproc)"
  first=1
  for f in "$out"/sandbox-medium-*.json "$out"/db-resync-large.json "$out"/engine.json "$out"/api.json; do
    [ -s "$f" ] || continue
    [ $first -eq 1 ] || printf ','
    first=0
    tr -d '\n' <"$f"
  done
  printf ']}\n'
} >"$out/table.json"
echo "written: $text and $out/table.json"
