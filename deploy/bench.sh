#!/usr/bin/env bash
# The whole benchmark set on the `large` profile, on an otherwise idle
# machine: content by each transport, resync, database copy (each beside
# the tools an operator would use instead, in the same run), the database
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
  # The run's report without build lines and per-migration timelines.
  "$@" 2>&1 | tee "$out/$name.log" | grep -v -E '^ +migration |^ *(Compiling|Finished|Running|Blocking|Downloaded|Updating) ' | tee -a "$text"
  echo >>"$text"
}
run sandbox env HOSTMIG_BENCH_PROFILE=large cargo bench --locked --bench sandbox
run db-resync env HOSTMIG_BENCH_PROFILE=large cargo bench --locked --bench db_resync
run engine cargo bench --locked --bench engine
run api cargo bench --locked --bench api
{
  printf '{"date":"%s","cores":%s,"benchmarks":[' "$(date -u '+%Y-%m-%dT%H:%M:%SZ')" "$(nproc)"
  first=1
  for f in "$out"/sandbox-large.json "$out"/db-resync-large.json "$out"/engine.json "$out"/api.json; do
    [ -s "$f" ] || continue
    [ $first -eq 1 ] || printf ','
    first=0
    tr -d '\n' <"$f"
  done
  printf ']}\n'
} >"$out/table.json"
echo "written: $text and $out/table.json"
