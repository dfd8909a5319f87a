#!/usr/bin/env bash
# Run each cmocka unit-test binary; record PASS/FAIL lines in build/results/unit.txt.
set -u
mkdir -p build/results
export SHARED=${SHARED:-$(cd .. && pwd)/shared}
out=build/results/unit.txt; : > "$out"
rc=0
for t in "$@"; do
  name=$(basename "$t")
  if "$t" > "build/results/$name.log" 2>&1; then
    echo "PASS unit/$name" | tee -a "$out"
  else
    echo "FAIL unit/$name (log: build/results/$name.log)" | tee -a "$out"
    tail -40 "build/results/$name.log"
    rc=1
  fi
done
exit $rc
