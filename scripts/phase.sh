#!/usr/bin/env bash
# scripts/phase.sh NAME CMD...: run CMD (one phase of `make test`), append "NAME: WALLs wall,
# CPUs cpu" to build/results/phases.log for summary.sh, and exit with CMD's status. The CPU time
# (user + system of CMD and everything it waited for) does not depend on what else the machine
# is running; wall time does.
set -u
name=$1; shift
start=$(date +%s)
rc=0
"$@" || rc=$?
mkdir -p build/results
# `times` (in this shell, not a subshell): line 2 is the children's user and system time,
# e.g. "1m2.345s 0m6.789s"
times > "build/results/.times-$$"
cpu=$(awk 'NR == 2 { t = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); t += a[1] * 60 + a[2] }
                     printf "%d", t + 0.5 }' "build/results/.times-$$")
rm -f "build/results/.times-$$"
echo "$name $(( $(date +%s) - start ))s wall ${cpu}s cpu" >> build/results/phases.log
exit $rc
