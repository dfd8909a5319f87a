#!/usr/bin/env bash
# audit_crash.sh -- the audit log survives kill -9 and names tampering.
# A writer appends from 4 threads and prints "ack SEQ" once each record is durable; we kill -9
# it mid-stream. Every acknowledged seq must be in the log, `audit verify` must pass (or report
# only a torn final record, which `audit repair` cuts off), and the chain must continue after
# reopening. Then we edit, delete, reorder and truncate records and check the exit statuses and
# messages, and check signed checkpoints against the right and a wrong public key.
set -euo pipefail
A=${AIRLOCK:?}
AS=${AIRLOCK_ASAN:-$A}
T=${TMP:?}
fail() { echo "FAIL: $*" >&2; exit 1; }

crash_run() { # LOG ACKS [writer options...] -> kills the writer after >= 300 acks
    local log=$1 acks=$2; shift 2
    : > "$acks" # exists before the loop below reads it, however late the writer starts
    "$A" audit selftest-write "$log" 100000000 "$@" > "$acks" &
    local pid=$! i=0
    while [ "$(wc -l < "$acks")" -lt 300 ]; do
        i=$((i + 1)); [ $i -lt 600 ] || { kill -9 $pid; fail "writer too slow"; }
        kill -0 $pid 2>/dev/null || fail "writer exited early"
        sleep 0.05
    done
    kill -9 $pid; wait $pid 2>/dev/null || true
}

check_acked() { # LOG ACKS: every acknowledged seq is present in the log
    grep -o '^{"seq":[0-9]*' "$1" | cut -d: -f2 | sort > "$T/present"
    sed -n 's/^ack //p' "$2" | sort > "$T/acked"
    local missing; missing=$(comm -13 "$T/present" "$T/acked" | head -5)
    [ -z "$missing" ] || fail "acknowledged seq(s) missing from $1: $missing"
    echo "ok: $(wc -l < "$T/acked") acknowledged records all present ($(wc -l < "$T/present") in log)"
}

verify_after_crash() { # LOG [verify options...]
    local log=$1; shift
    set +e; out=$("$A" audit verify "$log" "$@" 2>&1); rc=$?; set -e
    if [ $rc -eq 4 ] && grep -q "torn final record" <<<"$out"; then
        echo "torn tail reported: $out"
        "$A" audit repair "$log" || fail "repair failed"
        "$A" audit verify "$log" "$@" || fail "verify after repair failed"
    elif [ $rc -ne 0 ]; then
        fail "verify after kill -9 (rc $rc): $out"
    fi
}

# --- 1. kill -9 mid-stream, unsigned ------------------------------------------------------
log=$T/audit.jsonl
crash_run "$log" "$T/acks1"
check_acked "$log" "$T/acks1"
verify_after_crash "$log"
# reopening continues the chain
last=$(tail -n1 "$log" | grep -o '^{"seq":[0-9]*' | cut -d: -f2)
"$A" audit selftest-write "$log" 10 > "$T/acks1b"
grep -qx "ack $((last + 1))" "$T/acks1b" || fail "chain did not continue at seq $((last + 1))"
"$AS" audit verify "$log" > /dev/null || fail "verify after reopen"
echo "ok: chain continued after reopen"

# --- 2. kill -9 mid-stream with signed checkpoints ----------------------------------------
"$A" keygen -W -p "$T/srv.pub" -s "$T/srv.key" > /dev/null
"$A" keygen -W -p "$T/other.pub" -s "$T/other.key" > /dev/null
slog=$T/signed.jsonl
crash_run "$slog" "$T/acks2" --key "$T/srv.key" --every 50
check_acked "$slog" "$T/acks2"
verify_after_crash "$slog" --trust "$T/srv.pub"
"$A" audit selftest-write "$slog" 5 --key "$T/srv.key" > /dev/null  # clean close: checkpoint
tail -n1 "$slog" | grep -q '"type":"checkpoint"' || fail "no checkpoint at clean shutdown"
"$AS" audit verify "$slog" --trust "$T/srv.pub" --json > "$T/v.json"
grep -q '"ok": true' "$T/v.json" || fail "signed verify: $(cat "$T/v.json")"
set +e; out=$("$A" audit verify "$slog" --trust "$T/other.pub" 2>&1); rc=$?; set -e
[ $rc -eq 1 ] && grep -q "bad checkpoint signature" <<<"$out" || fail "wrong key accepted (rc $rc): $out"
echo "ok: signed checkpoints verify with the server key only"
# the real minisign accepts a checkpoint signature over the documented statement
cp_line=$(grep -m1 '"type":"checkpoint"' "$slog")
cp_seq=$(sed 's/^{"seq":\([0-9]*\),.*/\1/' <<<"$cp_line")
cp_prev=$(sed 's/.*"prev":"\([0-9a-f]*\)"}$/\1/' <<<"$cp_line")
printf 'airlock-audit-checkpoint v1\nseq: %s\nprev: %s\n' "$cp_seq" "$cp_prev" > "$T/stmt"
printf '%b' "$(sed 's/.*"sig":"\([^"]*\)".*/\1/' <<<"$cp_line")" > "$T/stmt.minisig"
minisign -Vm "$T/stmt" -x "$T/stmt.minisig" -p "$T/srv.pub" -q \
    || fail "minisign rejects checkpoint seq $cp_seq"
echo "ok: minisign verifies checkpoint seq $cp_seq"

# --- 3. tampering is named ------------------------------------------------------------------
expect() { # RC PATTERN LOG
    set +e; out=$("$AS" audit verify "$3" 2>&1); rc=$?; set -e
    [ $rc -eq "$1" ] || fail "expected exit $1, got $rc: $out"
    grep -q -- "$2" <<<"$out" || fail "expected '$2' in: $out"
    echo "ok: exit $rc: $out"
}
"$A" audit selftest-write "$T/base.jsonl" 20 > /dev/null
cp "$T/base.jsonl" "$T/edit.jsonl"
sed -i '7s/"status":200/"status":201/' "$T/edit.jsonl"
expect 1 "line 7 (seq 7): record was modified" "$T/edit.jsonl"
sed '5d' "$T/base.jsonl" > "$T/del.jsonl"
expect 1 "line 5 (seq 6): expected seq 5: records are missing" "$T/del.jsonl"
awk 'NR==9{h=$0; next} NR==10{print; print h; next} {print}' "$T/base.jsonl" > "$T/swap.jsonl"
expect 1 "line 9 (seq 10): expected seq 9" "$T/swap.jsonl"
head -c -30 "$T/base.jsonl" > "$T/torn.jsonl"
expect 4 "line 20: torn final record" "$T/torn.jsonl"
set +e; "$A" audit selftest-write "$T/torn.jsonl" 1 > /dev/null 2>&1; rc=$?; set -e
[ $rc -ne 0 ] || fail "writer appended after a torn record"
"$A" audit verify "$T/base.jsonl" --json | grep -q '"records": 20' || fail "json output"
[ "$("$A" audit tail "$T/base.jsonl" -n 3 | wc -l)" -eq 3 ] || fail "tail -n 3"
set +e; "$A" audit verify "$T/nonexistent.jsonl" 2>/dev/null; rc=$?; set -e
[ $rc -eq 3 ] || fail "missing log: expected exit 3, got $rc"
echo "PASS audit_crash"
