#!/usr/bin/env bash
# import.sh -- the clean side of the air gap end to end: a bundle packed (and signed) from the
# stories260K GGUF is imported into the model store by the ASan/UBSan build, as a directory
# and as a tar; `models` lists it; the stored manifest still passes the real minisign and
# every blob the real sha256sum; an untrusted key, a tampered file, a conflicting version and a
# hostile name are refused with the store unchanged; then `serve --model NAME` (port 0, so no
# collision with other tests) answers /v1/completions and /v1/chat/completions and lists the
# model under its name, and stops cleanly on SIGTERM.
set -euo pipefail
: "${AIRLOCK:?}" "${AIRLOCK_ASAN:?}" "${SHARED:?}" "${TMP:?}"
A=$AIRLOCK_ASAN
fail() { echo "FAIL: $*"; exit 1; }
cd "$TMP"
data=$TMP/data
"$AIRLOCK" keygen -W -p site.pub -s site.key >/dev/null
"$AIRLOCK" keygen -W -p other.pub -s other.key >/dev/null
mkdir src
cp "$SHARED/models/stories260K-q8_0.gguf" src/
printf 'MIT License (stories260K, Andrej Karpathy)\n' > src/LICENSE
"$AIRLOCK" pack src -o stories.tar --name stories260K --version 1 --key site.key \
  --license MIT --source https://example.org/stories260K >/dev/null
"$AIRLOCK" pack src -o stories-dir --name stories260K --version 2 --key site.key >/dev/null

# store state, to show a refused import changed nothing
snapshot() { (cd "$data/store" 2>/dev/null && find . -path ./tmp -prune -o -print | sort) || true; }

# 1. wrong key: exit 1, nothing in the store
rc=0; "$A" import stories.tar --trust other.pub --data "$data" 2> err.txt || rc=$?
[ "$rc" -eq 1 ] || { cat err.txt; fail "untrusted key: exit $rc, expected 1"; }
grep -q 'not a trusted key' err.txt || { cat err.txt; fail "no 'not a trusted key' message"; }
[ -z "$(ls -A "$data/store/models" 2>/dev/null)" ] || fail "untrusted import left a version"
[ -z "$(ls -A "$data/store/blobs/sha256" 2>/dev/null)" ] || fail "untrusted import left blobs"

# 2. import the tar: exit 0, listed, signed bytes and blobs check with stock tools
"$A" import stories.tar --trust site.pub --data "$data" --json > imp.json
python3 - <<'PY'
import json
r = json.load(open('imp.json'))
assert r['ok'] is True and r['already'] is False, r
assert (r['name'], r['version']) == ('stories260K', '1'), r
assert len(r['signer_key_id']) == 16, r
assert r['model'] == 'payload/stories260K-q8_0.gguf', r
assert r['blobs_new'] == 2 and r['bytes_copied'] == r['size'], r
PY
vdir=$data/store/models/stories260K/1
for f in MANIFEST.sha256 MANIFEST.sha256.minisig BOM.json record.json; do
  [ -f "$vdir/$f" ] || fail "$vdir/$f missing"
done
minisign -Vm "$vdir/MANIFEST.sha256" -p site.pub >/dev/null || fail "stored manifest: minisign"
grep ' payload/' "$vdir/MANIFEST.sha256" | while read -r h _; do
  echo "$h  $data/store/blobs/sha256/$h"
done | sha256sum --quiet -c - || fail "a blob does not hash to its name"
cmp "$SHARED/models/stories260K-q8_0.gguf" \
  "$data/store/blobs/sha256/$(sha256sum "$SHARED/models/stories260K-q8_0.gguf" | cut -c1-64)"
[ -z "$(ls -A "$data/store/tmp")" ] || fail "staging left behind"
"$A" models --data "$data" > list.txt
grep -E '^\* stories260K +1 ' list.txt || { cat list.txt; fail "models does not list stories260K 1"; }

# 3. same bundle again: a no-op; the directory form (version 2) shares both blobs
"$A" import stories.tar --trust site.pub --data "$data" > again.txt
grep -q 'already in the store' again.txt || { cat again.txt; fail "re-import was not a no-op"; }
"$A" import stories-dir --trust site.pub --data "$data" --json > imp2.json
python3 -c "
import json; r = json.load(open('imp2.json'))
assert r['blobs_new'] == 0 and r['blobs_shared'] == 2 and r['bytes_copied'] == 0, r"
[ "$(ls "$data/store/blobs/sha256" | wc -l)" -eq 2 ] || fail "identical blobs were not shared"
"$A" models --data "$data" --json > list.json
python3 -c "
import json; m = json.load(open('list.json'))['models']
assert [(x['name'], x['version']) for x in m] == [('stories260K', '2'), ('stories260K', '1')], m
assert m[0]['default'] and not m[1]['default'], m
assert all(len(x['signer_key_id']) == 16 and x['size'] > 379000 for x in m), m"

# 4. refused without changing anything: tampered file (1), conflicting version (3),
#    hostile name (4)
before=$(snapshot)
cp -r stories-dir tampered
chmod -R u+w tampered
printf 'X' | dd of=tampered/payload/stories260K-q8_0.gguf bs=1 seek=5000 conv=notrunc status=none
rc=0; "$A" import tampered --trust site.pub --data "$data" 2> err.txt || rc=$?
[ "$rc" -eq 1 ] || { cat err.txt; fail "tampered bundle: exit $rc, expected 1"; }
grep -q 'modified: payload/stories260K-q8_0.gguf' err.txt || { cat err.txt; fail "no 'modified'"; }
"$AIRLOCK" pack src -o conflict.tar --name stories260K --version 1 --key site.key \
  --license Apache-2.0 >/dev/null
rc=0; "$A" import conflict.tar --trust site.pub --data "$data" 2> err.txt || rc=$?
[ "$rc" -eq 3 ] || { cat err.txt; fail "conflicting version: exit $rc, expected 3"; }
grep -q 'never replaced' err.txt || { cat err.txt; fail "no conflict message"; }
"$AIRLOCK" pack src -o evil.tar --name ../../evil --version 1 --key site.key >/dev/null
rc=0; "$A" import evil.tar --trust site.pub --data "$data" 2> err.txt || rc=$?
[ "$rc" -eq 4 ] || { cat err.txt; fail "hostile name: exit $rc, expected 4"; }
[ "$(snapshot)" = "$before" ] || fail "a refused import changed the store"
[ ! -e "$TMP/evil" ] && [ ! -e "$data/evil" ] || fail "hostile name escaped"
rc=0; "$A" import stories.tar --data "$data" 2>/dev/null || rc=$?
[ "$rc" -eq 2 ] || fail "import without --trust: exit $rc, expected 2"

# 5. serve the stored model by name (ASan build): newest version, id = name
log=$TMP/serve.log
"$A" serve --data "$data" --model stories260K --no-auth --host 127.0.0.1 --port 0 \
  --audit-log off -t 2 >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
port=
for _ in $(seq 1 300); do
  port=$(grep -o 'http://127.0.0.1:[0-9]*' "$log" | head -1 | sed 's/.*://') || true
  [ -n "$port" ] && break
  kill -0 $pid 2>/dev/null || { cat "$log"; fail "serve exited early"; }
  sleep 0.1
done
[ -n "$port" ] || { cat "$log"; fail "serve did not report its port"; }
grep -q 'model stories260K version 2 from' "$log" || { cat "$log"; fail "did not serve version 2"; }
url=http://127.0.0.1:$port
curl -sf "$url/v1/models" > models.json
python3 -c "
import json; m = json.load(open('models.json'))
assert [x['id'] for x in m['data']] == ['stories260K'], m
assert m['data'][0]['version'] == '2', m"
curl -sf "$url/v1/models/stories260K" >/dev/null || fail "/v1/models/stories260K"
curl -sf "$url/v1/completions" -H 'Content-Type: application/json' \
  -d '{"model":"stories260K","prompt":"Once upon a time","max_tokens":16,"temperature":0}' \
  > cmpl.json
curl -sf "$url/v1/chat/completions" -H 'Content-Type: application/json' \
  -d '{"model":"stories260K","messages":[{"role":"user","content":"Tell a story"}],"max_tokens":16}' \
  > chat.json
python3 - <<'PY'
import json
c = json.load(open('cmpl.json'))
assert c['model'] == 'stories260K' and c['choices'][0]['text'].strip(), c
h = json.load(open('chat.json'))
assert h['choices'][0]['message']['content'] is not None, h
PY
curl -sf "$url/status" | python3 -c "
import json, sys; s = json.load(sys.stdin)
assert s['model']['id'] == 'stories260K', s
assert s['model']['version'] == '2' and len(s['model']['signer']) == 16, s"
kill -TERM $pid
src=0; wait $pid || src=$?
trap - EXIT
[ "$src" -eq 0 ] || { tail -30 "$log"; fail "serve exited with $src after SIGTERM"; }
! grep -qE 'ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:' "$log" || { cat "$log"; fail "sanitizer report"; }

# 6. an explicit version, and a name that is not there (exit 3, not found)
rc=0; "$AIRLOCK" serve --data "$data" --model nosuch --no-auth --port 0 2> err.txt || rc=$?
[ "$rc" -eq 3 ] || { cat err.txt; fail "unknown model: exit $rc, expected 3"; }
grep -q 'not in the store' err.txt || { cat err.txt; fail "no 'not in the store' message"; }
# a blob changed after import is refused before serving (exit 1)
blob=$data/store/blobs/sha256/$(sha256sum "$SHARED/models/stories260K-q8_0.gguf" | cut -c1-64)
chmod u+w "$blob"
printf 'Y' | dd of="$blob" bs=1 seek=6000 conv=notrunc status=none
rc=0; "$AIRLOCK" serve --data "$data" --model stories260K:1 --no-auth --port 0 2> err.txt || rc=$?
[ "$rc" -eq 1 ] || { cat err.txt; fail "damaged blob: exit $rc, expected 1"; }
grep -q 'changed since import' err.txt || { cat err.txt; fail "no 'changed since import'"; }
echo "import: ok"
