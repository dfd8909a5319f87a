#!/usr/bin/env bash
# keys_cli.sh -- `airlock keys`: the key is printed once on stdout and never stored; keys.json
# is 0600 and holds only salted hashes; list/revoke/--json/--expires work; errors exit right.
set -euo pipefail
A=${AIRLOCK_ASAN:-${AIRLOCK:?}}
T=${TMP:?}
fail() { echo "FAIL: $*" >&2; exit 1; }
D=$T/data

key=$("$A" keys add alice --data "$D" 2> "$T/err")
[[ $key =~ ^al-[A-Za-z0-9_-]{43}$ ]] || fail "unexpected key format: $key"
grep -q "only time" "$T/err" || fail "no 'shown once' notice: $(cat "$T/err")"
[ "$(stat -c %a "$D/keys.json")" = 600 ] || fail "keys.json mode $(stat -c %a "$D/keys.json")"
grep -q -- "${key#al-}" "$D/keys.json" && fail "the key itself is stored in keys.json"
grep -q '"sha256"' "$D/keys.json" || fail "no hash in keys.json"

AIRLOCK_DATA=$D "$A" keys add bob --expires 30d --json > "$T/bob.json"
grep -q '"key": "al-' "$T/bob.json" || fail "json add: $(cat "$T/bob.json")"
grep -q '"expires": "20' "$T/bob.json" || fail "json add expiry: $(cat "$T/bob.json")"

set +e
"$A" keys add alice --data "$D" 2>/dev/null; rc=$?
[ $rc -eq 3 ] || fail "duplicate name: exit $rc, expected 3"
"$A" keys add 'bad name' --data "$D" 2>/dev/null; rc=$?
[ $rc -eq 2 ] || fail "bad name: exit $rc, expected 2"
"$A" keys add carol --expires 2001-01-01 --data "$D" 2>/dev/null; rc=$?
[ $rc -eq 2 ] || fail "past expiry: exit $rc, expected 2"
"$A" keys revoke nobody --data "$D" 2>/dev/null; rc=$?
[ $rc -eq 3 ] || fail "revoke unknown: exit $rc, expected 3"
"$A" keys frobnicate --data "$D" 2>/dev/null; rc=$?
[ $rc -eq 2 ] || fail "unknown subcommand: exit $rc, expected 2"
set -e

"$A" keys revoke alice --data "$D" | grep -q "revoked key 'alice'" || fail "revoke output"
"$A" keys list --data "$D" > "$T/list"
grep -Eq '^alice +revoked' "$T/list" || fail "list: $(cat "$T/list")"
grep -Eq '^bob +active' "$T/list" || fail "list: $(cat "$T/list")"
"$A" keys list --data "$D" --json | grep -q '"status": "revoked"' || fail "list --json"

chmod 644 "$D/keys.json"
set +e; "$A" keys list --data "$D" 2>/dev/null; rc=$?; set -e
[ $rc -eq 1 ] || fail "group-readable keys.json: exit $rc, expected 1"
chmod 600 "$D/keys.json"
echo '{"version":1,"keys":[{"name":"x"}]}' > "$D/keys.json"
set +e; "$A" keys list --data "$D" 2>/dev/null; rc=$?; set -e
[ $rc -eq 4 ] || fail "malformed keys.json: exit $rc, expected 4"
"$A" keys --help | grep -q "Usage: airlock keys add" || fail "usage text"
echo "PASS keys_cli"
