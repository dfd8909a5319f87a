#!/usr/bin/env bash
# Run each libFuzzer binary for FUZZ_SECONDS on a scratch copy of its seed corpus
# (fuzz/corpus/NAME), so new inputs never dirty the checkout. Crashes land in build/fuzz/crashes.
set -u
secs=${FUZZ_SECONDS:-8}
mkdir -p build/results build/fuzz/crashes
out=build/results/fuzz.txt; : > "$out"
rc=0
for f in "$@"; do
  name=$(basename "$f"); short=${name#fuzz_}
  work=build/fuzz/work-$short; rm -rf "$work"; mkdir -p "$work"
  seeds=fuzz/corpus/$short; [ -d "$seeds" ] || seeds=
  if "$f" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
       -artifact_prefix=build/fuzz/crashes/"$short"- "$work" $seeds \
       > "build/results/fuzz-$short.log" 2>&1; then
    echo "PASS fuzz/$short (${secs}s, $(grep -o 'stat::number_of_executed_units: [0-9]*' build/results/fuzz-$short.log | grep -o '[0-9]*$' || echo '?') runs)" | tee -a "$out"
  else
    echo "FAIL fuzz/$short (log: build/results/fuzz-$short.log)" | tee -a "$out"
    tail -40 "build/results/fuzz-$short.log"
    rc=1
  fi
done
exit $rc
