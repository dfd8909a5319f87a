#!/usr/bin/env bash
# Count PASS/FAIL lines of every suite and print the closing line CI reads.
set -u
cat build/results/*.txt 2>/dev/null | grep '^FAIL' || true
p=$(cat build/results/*.txt 2>/dev/null | grep -c '^PASS' || true)
f=$(cat build/results/*.txt 2>/dev/null | grep -c '^FAIL' || true)
# time of each phase (scripts/phase.sh) and in all, on lines of their own before the one CI reads
[ -s build/results/phases.log ] && sed 's/^/test: phase /' build/results/phases.log
[ -s build/results/started ] && echo "test: total $(( $(date +%s) - $(cat build/results/started) ))s wall"
echo "test: $p passed, $f failed"
[ "$f" -eq 0 ] && [ "$p" -gt 0 ]
