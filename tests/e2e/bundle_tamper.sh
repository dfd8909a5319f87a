#!/usr/bin/env bash
# bundle_tamper.sh -- the tamper matrix on a small bundle: every forgery must be rejected with
# exit status 1 and a message naming what failed. Uses the real minisign to cross-check.
set -euo pipefail
A=${AIRLOCK:?}
cd "$TMP"
fails=0
mkdir -p src/sub/deeper
printf 'alpha\n' > src/a.txt
printf 'bravo bravo\n' > src/b.txt
printf '{"k": 1}\n' > src/sub/config.json
head -c 70000 /dev/urandom > src/sub/deeper/weights.dat
: > src/empty
"$A" keygen -W -p k.pub -s k.key >/dev/null
"$A" keygen -W -p other.pub -s other.key >/dev/null
"$A" pack src -o good --name tamper --version 1 --key k.key >/dev/null
"$A" verify good --trust k.pub >/dev/null
minisign -Vm good/MANIFEST.sha256 -p k.pub >/dev/null

flip() { # flip the byte at the middle of file $1
  python3 - "$1" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, 'rb').read())
i = len(b) // 2
b[i] ^= 0x01
open(p, 'wb').write(bytes(b))
PY
}

# expect_reject NAME PATTERN -- the bundle in ./case must be rejected with PATTERN in stderr
expect_reject() {
  local name=$1 pat=$2 rc=0
  "$A" verify case --trust k.pub > out.txt 2> err.txt || rc=$?
  if [ "$rc" -ne 1 ]; then
    echo "FAIL $name: exit $rc, expected 1"; cat err.txt; fails=$((fails + 1))
  elif ! grep -qE -- "$pat" err.txt; then
    echo "FAIL $name: message does not match /$pat/:"; cat err.txt; fails=$((fails + 1))
  else
    echo "ok   $name: $(grep -E -- "$pat" err.txt | head -1)"
  fi
}
fresh() { rm -rf case; cp -a good case; }

# flip one byte in each non-empty file of the bundle
while IFS= read -r f; do
  fresh
  [ -s "case/$f" ] || continue
  flip "case/$f"
  case "$f" in
    MANIFEST.sha256|MANIFEST.sha256.minisig) pat='signature' ;;
    BOM.json) pat='bom: BOM.json' ;;
    *) pat="modified: $f" ;;
  esac
  expect_reject "flip $f" "$pat"
done < <(cd good && find . -type f | sed 's|^\./||' | sort)

fresh; rm case/BOM.json
expect_reject 'delete BOM' 'missing: BOM.json'
fresh; rm case/MANIFEST.sha256.minisig
expect_reject 'delete signature' 'signature'
fresh; rm case/MANIFEST.sha256; ln -s ../good/MANIFEST.sha256 case/MANIFEST.sha256
expect_reject 'symlinked manifest' 'symbolic link'
fresh; truncate -s 3 case/payload/sub/deeper/weights.dat
expect_reject truncate 'truncated: payload/sub/deeper/weights.dat'
fresh; rm case/payload/b.txt
expect_reject delete 'missing: payload/b.txt'
fresh; echo new > case/payload/new.txt
expect_reject add 'extra file: payload/new.txt'
fresh; mv case/payload/a.txt case/payload/renamed.txt
expect_reject rename 'renamed: payload/a.txt -> payload/renamed.txt'
fresh; mv case/payload/a.txt t; mv case/payload/b.txt case/payload/a.txt; mv t case/payload/b.txt
expect_reject swap '(modified|size differs|truncated): payload/a.txt'
grep -qE '(modified|size differs|truncated): payload/b.txt' err.txt || { echo "FAIL swap: b.txt not named"; fails=$((fails + 1)); }
fresh; sed -i 's/"tamper"/"tampered"/' case/BOM.json
expect_reject 'edit BOM name' 'bom'
fresh; python3 - <<'PY'
import re
p = 'case/MANIFEST.sha256.minisig'
s = open(p).read()
s = s.replace('name=tamper', 'name=tamperX')
open(p, 'w').write(s)
PY
expect_reject 'edit trusted comment' 'signature.*(trusted comment|global)'
# same-size swap: only the hashes tell
fresh; printf 'ALPHA\n' > case/payload/a.txt
expect_reject 'same-size edit' 'modified: payload/a.txt'
fresh; "$A" pack src -o forged --name tamper --version 1 --key other.key >/dev/null
rm -rf case; mv forged case
expect_reject 'wrong key' 'not a trusted key'
fresh; ln -s a.txt case/payload/link
expect_reject 'symlink inside' 'refused: payload/link is a symbolic link'
fresh; mkfifo case/payload/fifo
expect_reject 'fifo inside' 'refused: payload/fifo is a fifo'
fresh; ln case/payload/a.txt case/hardlink
expect_reject 'hard link inside' 'hard link'
fresh; printf '%s  ../escape\n' "$(sha256sum src/a.txt | cut -d' ' -f1)" >> case/MANIFEST.sha256
expect_reject 'manifest edited (..)' 'signature'

# tar form: a flipped payload byte and a wrong key
"$A" pack src -o good.tar --name tamper --version 1 --key k.key >/dev/null
"$A" verify good.tar --trust k.pub >/dev/null
python3 - <<'PY'
import tarfile, io
src = tarfile.open('good.tar')
out = tarfile.open('case.tar', 'w', format=tarfile.PAX_FORMAT)
for m in src.getmembers():
    data = src.extractfile(m).read()
    if m.name == 'payload/b.txt':
        data = b'Bravo bravo\n'
    out.addfile(m, io.BytesIO(data))
out.close()
PY
rc=0; "$A" verify case.tar --trust k.pub 2> err.txt >/dev/null || rc=$?
if [ "$rc" -eq 1 ] && grep -q 'modified: payload/b.txt' err.txt; then echo "ok   tar flip"; else echo "FAIL tar flip (rc=$rc)"; cat err.txt; fails=$((fails + 1)); fi
rc=0; "$A" verify good.tar --trust other.pub 2> err.txt >/dev/null || rc=$?
if [ "$rc" -eq 1 ] && grep -q 'not a trusted key' err.txt; then echo "ok   tar wrong key"; else echo "FAIL tar wrong key (rc=$rc)"; cat err.txt; fails=$((fails + 1)); fi
# JSON report names the failure
rc=0; "$A" verify case.tar --trust k.pub --json > rep.json 2>/dev/null || rc=$?
python3 - <<'PY' || { echo "FAIL json report"; fails=$((fails + 1)); }
import json
r = json.load(open('rep.json'))
assert r['ok'] is False
assert any(f['path'] == 'payload/b.txt' and f['kind'] == 'modified' for f in r['failures']), r
PY

if [ "$fails" -ne 0 ]; then echo "$fails tamper case(s) not rejected"; exit 1; fi
echo "bundle_tamper: all cases rejected"
