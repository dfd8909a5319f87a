#!/usr/bin/env bash
# bundle_roundtrip.sh -- pack -> verify on a tree with nested dirs, empty files, unicode names
# and a >2 GiB sparse file; the output is checked by the real `sha256sum -c` and `minisign -Vm`,
# then verified as a directory, as a tar, and with --extract. The big file is hashed three
# times (pack, an independent digest of its known content, verify) plus two interrupted
# extracts; the tar, extract and full `sha256sum -c` passes use a small tree.
set -euo pipefail
A=${AIRLOCK:?}
cd "$TMP"
"$A" keygen -W -p k.pub -s k.key >/dev/null

mk_small() {
  mkdir -p "$1/a/b/c" "$1/ünïcødé dir" "$1/empty-dir-with-file"
  printf 'hello\n' > "$1/a/hello.txt"
  printf 'deep\n' > "$1/a/b/c/deep.txt"
  : > "$1/a/b/empty"
  : > "$1/empty-dir-with-file/zero"
  printf '日本語\n' > "$1/ünïcødé dir/名前.txt"
  printf 'back\\slash\n' > "$1/a/back\\slash.txt"
  head -c 3000000 /dev/urandom > "$1/a/b/random.bin"
}

# 1. big tree: sparse 2200 MiB file, directory bundle
mk_small big
truncate -s 2100M big/sparse.img
printf 'tail' | dd of=big/sparse.img bs=1 seek=$((2100 * 1024 * 1024 - 4)) conv=notrunc status=none
"$A" pack big -o B --name roundtrip --version 1.0 --key k.key --license MIT --source https://example.org/x
test -f B/MANIFEST.sha256 && test -f B/MANIFEST.sha256.minisig && test -f B/BOM.json
test -f B/payload/sparse.img && test -f "B/payload/ünïcødé dir/名前.txt" && test -f B/payload/a/b/empty
[ "$(stat -c %s B/payload/sparse.img)" -eq $((2100 * 1024 * 1024)) ]
# the copy stays sparse (< 64 MiB allocated)
[ "$(du -k B/payload/sparse.img | cut -f1)" -lt 65536 ] || { echo "FAIL: copy is not sparse"; exit 1; }
# sha256sum -c on every other line; the sparse file's line is checked against a digest
# computed independently from its known content (2100 MiB of zeros ending in "tail") without
# reading the file, which keeps the script well under 90 s on 2 busy cores
(cd B && grep -v '  payload/sparse.img$' MANIFEST.sha256 | sha256sum --quiet -c -)
want=$(grep '  payload/sparse.img$' B/MANIFEST.sha256 | cut -c1-64)
got=$(python3 -c '
import hashlib
h = hashlib.sha256(); z = bytes(16 << 20); n = 2100 * 1024 * 1024 - 4
while n: k = min(n, len(z)); h.update(z[:k]) if k < len(z) else h.update(z); n -= k
h.update(b"tail"); print(h.hexdigest())')
[ "$want" = "$got" ] || { echo "FAIL: sparse.img hash in manifest $want, expected $got"; exit 1; }
minisign -Vm B/MANIFEST.sha256 -p k.pub >/dev/null
grep -q 'airlock-bundle v1 name=roundtrip version=1.0 bom-sha256=' B/MANIFEST.sha256.minisig
# the manifest is sorted bytewise and lists BOM.json and every payload file
python3 - <<'PY'
lines = open('B/MANIFEST.sha256', 'rb').read().split(b'\n')[:-1]
paths = [l[67:].replace(b'\\\\', b'\\') if l.startswith(b'\\') else l[66:] for l in lines]
assert paths == sorted(paths), paths
assert b'payload/a/back\\slash.txt' in paths, paths
PY
[ "$(wc -l < B/MANIFEST.sha256)" -eq $(( $(find big -type f | wc -l) + 1 )) ]
"$A" verify B --trust k.pub --json > rep.json
python3 - <<'PY'
import json
r = json.load(open('rep.json'))
assert r['ok'] is True, r
assert r['bundle'] == {'name': 'roundtrip', 'version': '1.0'}, r['bundle']
assert len(r['signer_key_id']) == 16
assert all(f['status'] == 'ok' for f in r['files'])
assert any(f['path'] == 'payload/sparse.img' for f in r['files'])
PY
# an interrupted --extract leaves nothing at DEST (SIGTERM and SIGINT during the copy)
for sig in TERM INT; do
  "$A" verify B --trust k.pub --extract killed > /dev/null 2>&1 &
  pid=$!
  for _ in $(seq 1 50); do ls -d .killed.airlock-* >/dev/null 2>&1 && break; sleep 0.1; done
  sleep 0.3
  kill -s "$sig" "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  if [ -e killed ] || ls -d .killed.airlock-* >/dev/null 2>&1; then
    echo "FAIL: interrupted extract (SIG$sig) left files behind"; ls -la; exit 1
  fi
done
# refuses to overwrite without --force
rc=0; "$A" pack big -o B --name roundtrip --version 1.0 --key k.key 2>/dev/null || rc=$?
[ "$rc" -ne 0 ] || { echo "FAIL: pack overwrote an existing bundle"; exit 1; }
rm -f big/sparse.img

# 2. small tree: tar form, extract, --force, trust directory
mk_small small
"$A" pack small -o S.tar --name small --version 2 --key k.key >/dev/null
tar tf S.tar > list.txt
grep -qx 'MANIFEST.sha256' list.txt && grep -qx 'BOM.json' list.txt
grep -qx 'payload/ünïcødé dir/名前.txt' list.txt
[ "$(tail -1 list.txt)" = MANIFEST.sha256.minisig ]
python3 -c "import tarfile,sys; t=tarfile.open('S.tar'); sys.exit(0 if t.getmembers()[0].pax_headers is not None else 1)"
"$A" verify S.tar --trust k.pub
mkdir trustdir && cp k.pub trustdir/
"$A" verify S.tar --trust trustdir
"$A" verify S.tar --trust k.pub --extract out1
(cd out1 && sha256sum --quiet -c MANIFEST.sha256)
tar xf S.tar -C "$(mkdir -p untarred && echo untarred)"
(cd untarred && sha256sum --quiet -c MANIFEST.sha256)
minisign -Vm untarred/MANIFEST.sha256 -p k.pub >/dev/null
minisign -Vm out1/MANIFEST.sha256 -p k.pub >/dev/null
cmp small/a/b/random.bin out1/payload/a/b/random.bin
"$A" verify out1 --trust k.pub
# extract refuses an existing DEST and leaves it alone
rc=0; "$A" verify S.tar --trust k.pub --extract out1 2>/dev/null || rc=$?
[ "$rc" -ne 0 ] || { echo "FAIL: extract over an existing DEST"; exit 1; }
# directory bundle --extract
"$A" pack small -o S --name small --version 2 --key k.key >/dev/null
"$A" verify S --trust k.pub --extract out2
diff -r S out2
"$A" pack small -o S --name small --version 3 --key k.key --force >/dev/null
grep -q 'version=3' S/MANIFEST.sha256.minisig
# failed extract leaves nothing at DEST
echo tamper >> S/payload/a/hello.txt
rc=0; "$A" verify S --trust k.pub --extract out3 2>/dev/null || rc=$?
[ "$rc" -eq 1 ] && [ ! -e out3 ] && ! ls -d .out3.* 2>/dev/null || { echo "FAIL: failed extract left files (rc=$rc)"; exit 1; }
# pack refuses symlinks in the source unless --skip-special
ln -s a/hello.txt small/link
rc=0; "$A" pack small -o L --name l --version 1 --key k.key 2> err.txt || rc=$?
[ "$rc" -ne 0 ] && grep -q 'link (symbolic link)' err.txt || { echo "FAIL: symlink packed"; cat err.txt; exit 1; }
"$A" pack small -o L --name l --version 1 --key k.key --skip-special 2>/dev/null >/dev/null
[ ! -e L/payload/link ]
echo "bundle_roundtrip: ok"
