#!/usr/bin/env bash
# Run each tests/e2e/*.sh in its own temp dir; record PASS/FAIL in build/results/e2e.txt.
# Scripts get AIRLOCK (release binary), AIRLOCK_ASAN (sanitizer build), SHARED (../shared),
# ROOT (the checkout) and TMP (a private scratch dir, removed afterwards).
set -u
mkdir -p build/results
out=build/results/e2e.txt; : > "$out"
export ROOT=$PWD
export SHARED=${SHARED:-$(cd "$ROOT/.." && pwd)/shared}
rc=0
for t in "$@"; do
  name=$(basename "$t" .sh)
  tmp=$(mktemp -d)
  start=$(date +%s)
  if TMP=$tmp timeout 900 bash "$t" > "build/results/e2e-$name.log" 2>&1; then
    echo "PASS e2e/$name ($(( $(date +%s) - start ))s)" | tee -a "$out"
  else
    echo "FAIL e2e/$name (log: build/results/e2e-$name.log)" | tee -a "$out"
    tail -40 "build/results/e2e-$name.log"
    rc=1
  fi
  # never delete through a mount a test left behind (tests that mount use private namespaces)
  if awk -v t="$tmp" '$2 == t || index($2, t "/") == 1 {f = 1} END {exit !f}' /proc/mounts; then
    echo "FAIL e2e/$name: left mounts under $tmp (not removed)" | tee -a "$out"
    rc=1
  else
    rm -rf "$tmp"
  fi
done
exit $rc
