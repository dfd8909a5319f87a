#!/usr/bin/env bash
# minisign_interop.sh -- airlock keygen/sign against the real minisign binary, both ways,
# with unencrypted and passphrase-encrypted keys, plus forgeries that both must reject.
# Env: AIRLOCK (release), AIRLOCK_ASAN (sanitizer build, used for every parse of a hostile
# file), TMP (scratch). Encrypted keys cost ~1 GiB and a few seconds of scrypt each.
set -euo pipefail

A=${AIRLOCK:?AIRLOCK must name the release binary}
AS=${AIRLOCK_ASAN:-$A}
cd "${TMP:?TMP must name a scratch dir}"
command -v minisign >/dev/null || { echo "FAIL: minisign is not installed"; exit 1; }

fail() { echo "FAIL: $*"; exit 1; }
ok() { echo "ok: $*"; }
# expect STATUS CMD...: run CMD, require that exit status
expect() {
    local want=$1; shift
    local got=0
    "$@" >out.txt 2>err.txt || got=$?
    [ "$got" -eq "$want" ] || { cat out.txt err.txt; fail "'$*' exited $got, expected $want"; }
}
mode() { stat -c %a "$1"; }

printf 'weights \x00\x01\x02 and some text\n' > model.bin
head -c 300000 /dev/urandom >> model.bin

# --- 1. airlock key pair, unencrypted; minisign verifies airlock's signature --------------
expect 0 "$A" keygen -W -p a.pub -s a.key
[ "$(mode a.pub)" = 600 ] && [ "$(mode a.key)" = 600 ] || fail "key files are not 0600"
grep -q '^untrusted comment: airlock public key [0-9A-F]\{16\}$' a.pub || fail "pub comment"
cp a.pub a.pub.orig
expect 3 "$A" keygen -W -p a.pub -s a.key
grep -q "already exists" err.txt || fail "no 'already exists' message"
cmp -s a.pub a.pub.orig || fail "a.pub changed without --force"
expect 3 "$A" keygen -W -p a.pub -s other.key
[ ! -e other.key ] || fail "secret key written although its public key file exists"
expect 0 "$A" keygen -W -f -p a.pub -s a.key --json
python3 -c 'import json,sys; d=json.load(open("out.txt")); assert len(d["key_id"])==16 and d["encrypted"] is False' \
    || fail "keygen --json output"
cmp -s a.pub a.pub.orig && fail "--force did not replace the key"
ok "airlock keygen -W: 0600, no overwrite without --force"

expect 0 "$A" sign -s a.key -m model.bin
[ -f model.bin.minisig ] || fail "model.bin.minisig not written"
expect 0 minisign -Vm model.bin -p a.pub
expect 0 "$AS" sign --verify -p a.pub -m model.bin
grep -q "^Trusted comment: timestamp:[0-9]*	file:model.bin	hashed$" out.txt || fail "trusted comment"
expect 0 "$A" sign -s a.key -m model.bin -x custom.sig -t "release 1.0" -c "my comment"
expect 0 minisign -Vm model.bin -p a.pub -x custom.sig
grep -q "Trusted comment: release 1.0" out.txt || fail "minisign did not show the trusted comment"
ok "minisign -V accepts airlock signatures"

# --- 2. minisign key pair, unencrypted; airlock verifies and signs ------------------------
minisign -G -W -p m.pub -s m.key >/dev/null
minisign -Sm model.bin -s m.key -x m.sig -t "from minisign" >/dev/null
expect 0 "$AS" sign --verify -p m.pub -m model.bin -x m.sig
expect 0 "$AS" sign --verify -P "$(sed -n 2p m.pub)" -m model.bin -x m.sig --json
python3 -c 'import json; d=json.load(open("out.txt")); assert d["verified"] and d["trusted_comment"]=="from minisign"' \
    || fail "verify --json output"
minisign -S -l -m model.bin -s m.key -x legacy.sig >/dev/null
expect 0 "$AS" sign --verify -p m.pub -m model.bin -x legacy.sig
expect 0 "$A" sign -s m.key -m model.bin -x am.sig
expect 0 minisign -Vm model.bin -p m.pub -x am.sig
mkdir trust && cp a.pub m.pub trust/
expect 0 "$AS" sign --verify -p trust -m model.bin -x m.sig
expect 0 "$AS" sign --verify -p trust -m model.bin
ok "airlock verifies minisign signatures (prehashed, legacy, key dir) and signs with minisign keys"

# --- 3. encrypted keys both ways (4 scrypt runs, each 1 GiB and seconds of CPU; a wrong
#     passphrase is covered with cheap scrypt costs in tests/unit/test_minisig.c) ---------
AIRLOCK_PASSPHRASE='correct horse' expect 0 "$A" keygen -p e.pub -s e.key
grep -q "encrypted" out.txt || fail "keygen did not report an encrypted key"
echo 'correct horse' | minisign -Sm model.bin -s e.key -x e.sig >/dev/null \
    || fail "minisign could not sign with airlock's encrypted key"
expect 0 minisign -Vm model.bin -p e.pub -x e.sig
ok "airlock-encrypted key works in minisign"

printf 'pw for minisign\npw for minisign\n' | minisign -G -p me.pub -s me.key >/dev/null
printf 'pw for minisign\n' > pass.txt
expect 0 "$A" sign -s me.key -m model.bin -x me.sig --passphrase-file pass.txt
expect 0 minisign -Vm model.bin -p me.pub -x me.sig
expect 2 env -u AIRLOCK_PASSPHRASE setsid -w "$A" sign -s me.key -m model.bin -x me3.sig </dev/null
grep -q "no terminal" err.txt || fail "no-terminal message missing"
ok "minisign-encrypted key works in airlock; no passphrase source is a usage error"

# --- 4. forgeries: both tools must reject ----------------------------------------------------
cp model.bin tampered.bin
printf 'X' | dd of=tampered.bin bs=1 seek=4096 conv=notrunc 2>/dev/null
cp model.bin.minisig tampered.bin.minisig
expect 1 "$AS" sign --verify -p a.pub -m tampered.bin
grep -q "signature does not match" err.txt || fail "tampered file: wrong message"
minisign -Vm tampered.bin -p a.pub >/dev/null 2>&1 && fail "minisign accepted a tampered file"

sed 's/^trusted comment: .*/trusted comment: timestamp:0\tfile:model.bin\thashed/' \
    model.bin.minisig > edited.sig
expect 1 "$AS" sign --verify -p a.pub -m model.bin -x edited.sig
grep -q "trusted comment was modified" err.txt || fail "edited comment: wrong message"
minisign -Vm model.bin -p a.pub -x edited.sig >/dev/null 2>&1 \
    && fail "minisign accepted an edited trusted comment"

expect 1 "$AS" sign --verify -p m.pub -m model.bin
kid_a=$(sed -n 's/^untrusted comment: airlock public key //p' a.pub)
grep -q "unknown key ID $kid_a" err.txt || fail "wrong key: message does not name key ID $kid_a"
minisign -Vm model.bin -p m.pub >/dev/null 2>&1 && fail "minisign accepted the wrong key"
ok "tampered file, edited trusted comment and wrong key rejected by both"

# --- 5. malformed input: exit 4, never a crash ---------------------------------------------
head -c 100 model.bin.minisig > trunc.sig
expect 4 "$AS" sign --verify -p a.pub -m model.bin -x trunc.sig
{ cat model.bin.minisig; echo extra; } > trailing.sig
expect 4 "$AS" sign --verify -p a.pub -m model.bin -x trailing.sig
printf 'untrusted comment: x\nnot base64!\n' > bad.pub
expect 4 "$AS" sign --verify -p bad.pub -m model.bin
cp bad.pub trust/zz-bad.pub
expect 4 "$AS" sign --verify -p trust -m model.bin
grep -q "zz-bad.pub" err.txt || fail "malformed key in trust dir not named"
expect 2 "$A" sign -m model.bin
expect 2 "$A" keygen -p only.pub
ok "malformed signatures and keys rejected with exit 4"

echo "PASS minisign_interop"
