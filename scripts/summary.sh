#!/usr/bin/env bash
# Count PASS/FAIL lines of every suite and print the closing line CI reads.
set -u
cat build/results/*.txt 2>/dev/null | grep '^FAIL' || true
p=$(cat build/results/*.txt 2>/dev/null | grep -c '^PASS' || true)
f=$(cat build/results/*.txt 2>/dev/null | grep -c '^FAIL' || true)
echo "test: $p passed, $f failed"
[ "$f" -eq 0 ] && [ "$p" -gt 0 ]
