#!/usr/bin/env bash
# drive_verify.sh -- drives prepared the way runbooks do it, without airlock: sha256sum
# manifests (relative, binary-marker, and absolute `find ... -exec sha256sum` form), signed
# with a throwaway gpg key (checked through gpgv) or with minisign; then the tamper matrix:
# flipped byte, truncation, missing, extra, renamed, edited manifest, wrong key, untrusted
# signer -- all rejected with a message naming what failed; unsigned refused unless allowed.
set -euo pipefail
A=${AIRLOCK:?}
cd "$TMP"
fails=0
export GNUPGHOME=$TMP/gnupg
mkdir -m 700 "$GNUPGHOME"
gpg --batch --quiet --passphrase '' --quick-gen-key 'Drive Signer <signer@example.org>' ed25519 sign never 2>/dev/null
gpg --batch --export > keyring.gpg
GNUPGHOME=$TMP/gnupg2; mkdir -m 700 "$GNUPGHOME"
gpg --homedir "$TMP/gnupg2" --batch --quiet --passphrase '' --quick-gen-key 'Mallory <m@example.org>' ed25519 sign never 2>/dev/null
gpg --homedir "$TMP/gnupg2" --batch --export > mallory.gpg
GNUPGHOME=$TMP/gnupg
minisign -G -W -p m.pub -s m.key >/dev/null
minisign -G -W -p other.pub -s other.key >/dev/null

make_tree() {
  mkdir -p "$1/models/sub"
  printf 'weights weights\n' > "$1/models/model.gguf.part"
  head -c 50000 /dev/urandom > "$1/models/sub/blob.dat"
  printf 'readme\n' > "$1/README.txt"
  : > "$1/models/empty"
}

check() { # check NAME WANT_RC PATTERN -- verify args follow after --
  local name=$1 want=$2 pat=$3; shift 4
  local rc=0
  "$A" verify "$@" > out.txt 2> err.txt || rc=$?
  if [ "$rc" -ne "$want" ]; then
    echo "FAIL $name: exit $rc, expected $want"; cat err.txt; fails=$((fails + 1)); return
  fi
  if [ -n "$pat" ] && ! grep -qE -- "$pat" err.txt out.txt; then
    echo "FAIL $name: no /$pat/ in:"; cat err.txt; fails=$((fails + 1)); return
  fi
  echo "ok   $name"
}
flip() { python3 -c "
import sys; p=sys.argv[1]; b=bytearray(open(p,'rb').read()); b[len(b)//2]^=1; open(p,'wb').write(bytes(b))" "$1"; }

# --- gpg drive, relative paths, manifest written by find (lists itself: skipped with a note)
make_tree gdrive
(cd gdrive && find . -type f -exec sha256sum {} + > TRANSFER_MANIFEST.sha256)
gpg --batch --yes --quiet --detach-sign gdrive/TRANSFER_MANIFEST.sha256
check 'gpg good' 0 'OK' -- gdrive --trust-gpg keyring.gpg
grep -q 'skipped' err.txt || { echo "FAIL: no note for the manifest's own line"; fails=$((fails + 1)); }
sha256sum --quiet -c <(cd gdrive && grep -v TRANSFER_MANIFEST TRANSFER_MANIFEST.sha256 | sed 's|  \./|  gdrive/|') >/dev/null
check 'gpg, --manifest spelled differently' 0 'OK' -- ./gdrive/ --manifest gdrive/TRANSFER_MANIFEST.sha256 --trust-gpg keyring.gpg
check 'gpg wrong keyring' 1 'NO_PUBKEY|not in the trusted keyring' -- gdrive --trust-gpg mallory.gpg
cp -a gdrive g2; gpg --homedir "$TMP/gnupg2" --batch --yes --quiet --detach-sign g2/TRANSFER_MANIFEST.sha256
check 'gpg untrusted signer' 1 'signature' -- g2 --trust-gpg keyring.gpg
rm -rf g2; cp -a gdrive g2; sed -i '1s/^./0/' g2/TRANSFER_MANIFEST.sha256
sed -i '1s/^0/1/;t;1s/^./0/' g2/TRANSFER_MANIFEST.sha256
check 'gpg edited manifest' 1 'BADSIG|signature' -- g2 --trust-gpg keyring.gpg
rm -rf g2; cp -a gdrive g2; rm g2/TRANSFER_MANIFEST.sha256.sig
check 'gpg signature missing' 1 'signature' -- g2 --trust-gpg keyring.gpg
rm -rf g2; cp -a gdrive g2; flip g2/models/sub/blob.dat
check 'gpg flipped byte' 1 'modified: models/sub/blob.dat' -- g2 --trust-gpg keyring.gpg
rm -rf g2; cp -a gdrive g2; truncate -s 10 g2/models/sub/blob.dat
check 'gpg truncation' 1 'modified: models/sub/blob.dat' -- g2 --trust-gpg keyring.gpg
rm -rf g2; cp -a gdrive g2; rm g2/README.txt
check 'gpg missing' 1 'missing: README.txt' -- g2 --trust-gpg keyring.gpg
rm -rf g2; cp -a gdrive g2; echo extra > g2/models/extra.bin
check 'gpg extra' 1 'extra file: models/extra.bin' -- g2 --trust-gpg keyring.gpg
rm -rf g2; cp -a gdrive g2; mv g2/models/model.gguf.part g2/models/moved.part
check 'gpg renamed' 1 'renamed: models/model.gguf.part -> models/moved.part' -- g2 --trust-gpg keyring.gpg
rm -rf g2

# --- armored .asc signature, binary markers, SHA256SUMS name
make_tree adrive
(cd adrive && sha256sum -b README.txt models/model.gguf.part models/sub/blob.dat models/empty > SHA256SUMS)
gpg --batch --yes --quiet --armor --detach-sign -o adrive/SHA256SUMS.asc adrive/SHA256SUMS
check 'gpg .asc + binary markers' 0 'OK' -- adrive --trust-gpg keyring.gpg

# --- absolute paths as `find $PWD/drive -type f -exec sha256sum {} \;` writes them
make_tree abs
find "$PWD/abs" -type f -exec sha256sum {} \; > abs.sha256
mv abs.sha256 abs/TRANSFER_MANIFEST.sha256
minisign -Sm abs/TRANSFER_MANIFEST.sha256 -s m.key >/dev/null
check 'absolute without --strip-prefix' 1 'absolute path|strip-prefix' -- abs --trust m.pub
check 'absolute + --strip-prefix' 0 'OK' -- abs --strip-prefix "$PWD/abs" --trust m.pub
check 'absolute + --strip-prefix/' 0 'OK' -- abs --strip-prefix "$PWD/abs/" --trust m.pub
check 'absolute, wrong prefix' 1 'not under' -- abs --strip-prefix /mnt/elsewhere --trust m.pub

# --- minisign drive with an explicit --manifest outside it
make_tree mdrive
(cd mdrive && sha256sum README.txt models/model.gguf.part models/sub/blob.dat models/empty) > list.sha256
minisign -Sm list.sha256 -s m.key >/dev/null
check 'minisign --manifest' 0 'OK' -- mdrive --manifest list.sha256 --trust m.pub
check 'minisign wrong key' 1 'not a trusted key' -- mdrive --manifest list.sha256 --trust other.pub
cp list.sha256 edited.sha256; cp list.sha256.minisig edited.sha256.minisig
sed -i 's/README.txt/README.TXT/' edited.sha256
check 'minisign edited manifest' 1 'signature' -- mdrive --manifest edited.sha256 --trust m.pub
cp -a mdrive m2; flip m2/README.txt
check 'minisign flipped byte' 1 'modified: README.txt' -- m2 --manifest list.sha256 --trust m.pub
rm -rf m2

# --- unsigned
make_tree udrive
(cd udrive && sha256sum README.txt models/model.gguf.part models/sub/blob.dat models/empty > SHA256SUMS)
check 'unsigned, no trust option' 2 'allow-unsigned' -- udrive
check 'unsigned, --trust but no .minisig' 1 'missing' -- udrive --trust m.pub
check 'unsigned allowed' 0 'UNSIGNED' -- udrive --allow-unsigned
echo x >> udrive/README.txt
check 'unsigned allowed, tampered' 1 'modified: README.txt' -- udrive --allow-unsigned
check 'unsigned allowed, tampered, json' 1 '"kind": "modified"' -- udrive --allow-unsigned --json
# hostile manifest lines
printf '%s  ../outside\n' "$(sha256sum abs/README.txt | cut -d' ' -f1)" > udrive/SHA256SUMS
check 'manifest with ..' 1 "'\.\.' component" -- udrive --allow-unsigned
printf 'zz  README.txt\n' > udrive/SHA256SUMS
check 'malformed manifest' 1 'manifest' -- udrive --allow-unsigned

if [ "$fails" -ne 0 ]; then echo "$fails drive case(s) failed"; exit 1; fi
echo "drive_verify: all cases behaved"
