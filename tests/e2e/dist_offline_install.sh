#!/usr/bin/env bash
# dist_offline_install.sh -- `make dist` end to end: build the signed bundle (scripts/dist.sh),
# then install airlock from it in a minimal Debian 12 root (mmdebstrap --variant=minbase, the
# package set of debootstrap --variant=minbase) that has NO network (unshare --net), exactly as
# docs/install-offline.md tells an operator:
#   1. bootstrap check with coreutils only: MANIFEST.sha256 against the fingerprint carried out
#      of band, then `sha256sum -c MANIFEST.sha256`;
#   2. the signature with the clean side's own minisign (installed in the root from Debian's
#      minisign + libsodium23 packages, standing in for the enclave's installation media);
#   3. `sh payload/install.sh` (dpkg -i, no repository), then `airlock --version`,
#      `airlock verify` of the bundle itself, `airlock run` on a small model, remove + purge.
# The root comes from scripts/dist-root.sh, which makes it once from the Debian mirror (about
# a minute and a half cold) and caches it as a tarball in ${XDG_CACHE_HOME:-~/.cache}/airlock-dist/;
# `make test` starts that in the background after the build, and this script waits for it.
# Needs root (chroot, namespaces): re-runs itself with sudo -n when not root, as deps.sh does.
set -euo pipefail
ROOT=${ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
A=${AIRLOCK:-$ROOT/airlock}
SHARED=${SHARED:-$(cd "$ROOT/.." && pwd)/shared}
MODEL=${MODEL:-$SHARED/models/stories260K-q8_0.gguf}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/airlock-dist
if [ "$(id -u)" -ne 0 ]; then
  sudo -n true 2>/dev/null || { echo "FAIL: needs root (chroot, unshare) or passwordless sudo"; exit 1; }
  # a private TMP of root's own (made and removed below), not the caller's
  exec sudo -n env PATH="$PATH" ROOT="$ROOT" AIRLOCK="$A" SHARED="$SHARED" MODEL="$MODEL" \
    MIRROR="$MIRROR" XDG_CACHE_HOME="${XDG_CACHE_HOME:-$HOME/.cache}" TMP= bash "$0"
fi
own_tmp=
if [ -z "${TMP:-}" ]; then TMP=$(mktemp -d); own_tmp=$TMP; fi
t0=$(date +%s)
say() { printf 'dist-e2e [%3ds] %s\n' "$(( $(date +%s) - t0 ))" "$*"; }
[ -r "$MODEL" ] || { echo "FAIL: model $MODEL missing"; exit 1; }
R=$TMP/root

cleanup() {
  # the mounts live in a private mount namespace and die with it; undo any that leaked
  # before anything under $TMP is removed, so nothing on the host is ever deleted through one
  if [ -d "$R" ]; then
    awk -v r="$R" '$2 == r || index($2, r "/") == 1 {print $2}' /proc/mounts | sort -r |
      while read -r m; do umount -l "$m" 2>/dev/null || true; done
  fi
  if [ -n "$own_tmp" ]; then
    if awk -v r="$own_tmp" 'index($2, r "/") == 1 {f = 1} END {exit !f}' /proc/mounts; then
      echo "dist-e2e: mounts remain under $own_tmp; not removing it" >&2
    else rm -rf "$own_tmp"; fi
  fi
}
trap cleanup EXIT

# --- connected side: the bundle --------------------------------------------------------------
"$A" keygen -W -p "$TMP/release.pub" -s "$TMP/release.key" >/dev/null
say "scripts/dist.sh"
KEY=$TMP/release.key PUB=$TMP/release.pub OUT=$TMP/dist AIRLOCK=$A \
  bash "$ROOT/scripts/dist.sh" > "$TMP/dist.out"
B=$(tail -1 "$TMP/dist.out")
[ -f "$B/MANIFEST.sha256" ] && [ -f "$B/payload/install.sh" ] && [ -f "$B/payload/ORDER" ]
ver=$("$A" --version | awk '{print $2}')
[ "$(basename "$B")" = "airlock-$ver-bundle" ]
fpr=$(sha256sum "$B/MANIFEST.sha256" | cut -d' ' -f1)
grep -qx "$fpr" "$TMP/dist/airlock-$ver.manifest-sha256"
# a changed byte is caught by the bootstrap check and by airlock
cp -a "$B" "$TMP/tampered"
deb=$(ls "$TMP"/tampered/payload/debs/airlock_*.deb)
printf 'x' >> "$deb"
if (cd "$TMP/tampered" && sha256sum --quiet -c MANIFEST.sha256 >/dev/null 2>&1); then
  echo "FAIL: sha256sum -c accepted a modified .deb"; exit 1; fi
set +e; "$A" verify "$TMP/tampered" --trust "$TMP/release.pub" --allow-code -j 1 >/dev/null 2>&1
rc=$?; set -e
[ "$rc" -eq 1 ] || { echo "FAIL: airlock verify of a modified bundle: exit $rc, want 1"; exit 1; }
rm -rf "$TMP/tampered"
say "bundle $(du -sk "$B" | cut -f1) KiB: $(sed 's|.*/||; s|_.*||' "$B/payload/ORDER" | paste -sd' ')"

# --- a clean minimal Debian 12 root ----------------------------------------------------------
# made (or waited for, when `make test` started it in the background) by scripts/dist-root.sh
tarball=$(MIRROR=$MIRROR "$ROOT/scripts/dist-root.sh" 2> "$TMP/dist-root.log") ||
  { cat "$TMP/dist-root.log"; echo "FAIL: no minimal root (scripts/dist-root.sh)"; exit 1; }
say "$(tail -1 "$TMP/dist-root.log" | sed 's/^dist-root: //'); unpacking it"
mkdir -p "$CACHE" "$R"
tar -C "$R" --numeric-owner -xpf "$tarball"
# the clean side's own minisign (its installation media), not taken from the bundle
tools=$CACHE/tools
if ! ls "$tools"/minisign_*.deb "$tools"/libsodium23_*.deb >/dev/null 2>&1; then
  mkdir -p "$tools"
  (cd "$tools" && apt-get download -q=2 -o APT::Sandbox::User=root minisign libsodium23)
fi
# nothing from the connected side but the bundle, the public key and its fingerprint
mkdir -p "$R/root/tools" "$R/root/transfer"
cp -a "$B" "$R/root/transfer/bundle"
cp "$TMP/release.pub" "$R/root/transfer/release.pub"
echo "$fpr  MANIFEST.sha256" > "$R/root/transfer/MANIFEST.fingerprint"
cp "$tools"/minisign_*.deb "$tools"/libsodium23_*.deb "$R/root/tools/"
cp "$MODEL" "$R/root/model.gguf"
! [ -e "$R/usr/bin/airlock" ] || { echo "FAIL: the clean root already has airlock"; exit 1; }

cat > "$R/root/clean-side.sh" <<'EOF'
set -eu
# no network at all: only the loopback device, and connecting anywhere fails at once
n=$(awk -F: 'NR > 2 && $1 !~ /^ *lo$/' /proc/net/dev | wc -l)
[ "$n" -eq 0 ] || { echo "FAIL: the clean root sees $n network devices"; exit 1; }
if bash -c 'exec 3<>/dev/tcp/151.101.2.132/80' 2>/dev/null; then echo "FAIL: network"; exit 1; fi
cd /root/transfer/bundle
# 1. coreutils only: the manifest is the one the connected side printed, every file matches it
sha256sum -c ../MANIFEST.fingerprint
sha256sum --quiet -c MANIFEST.sha256
# 2. the signature, with minisign from the clean side's own Debian media
dpkg -i /root/tools/libsodium23_*.deb /root/tools/minisign_*.deb >/dev/null
minisign -Vm MANIFEST.sha256 -p ../release.pub
grep -q 'trusted comment: airlock-bundle v1 name=airlock ' MANIFEST.sha256.minisig
# 3. install without any repository
sh payload/install.sh
dpkg-query -W -f='${Status} ${Version}\n' airlock | grep -q '^install ok installed '
dpkg --audit
airlock --version
airlock verify /root/transfer/bundle --trust /root/transfer/release.pub --allow-code -j 1
airlock run /root/model.gguf -p "Once upon a time" -n 8 --temp 0 -t 1 > /root/run.out
test -s /root/run.out
echo "run: Once upon a time$(cat /root/run.out)"
test -f /lib/systemd/system/airlock.service && test -f /etc/default/airlock
test -f /usr/share/man/man1/airlock-verify.1.gz && test -f /usr/share/doc/airlock/copyright
# the unit's own ExecStart with the shipped /etc/default/airlock serves the embedded model
# (what systemd would run; there is no systemd in the chroot): a key first, then /ready
mkdir -p -m 0700 /var/lib/airlock
airlock keys add e2e --data /var/lib/airlock > /dev/null
cmd=$(sed -n 's/^ExecStart=//p' /lib/systemd/system/airlock.service | sed 's/\$\$/$/g')
set -a; . /etc/default/airlock; set +a
[ -z "$MODEL" ] && [ "$HOST" = 127.0.0.1 ] && [ "$PORT" = 8080 ]
eval "$cmd" > /root/serve.log 2>&1 &
srv=$!
ready=
for _ in $(seq 1 100); do
  resp=$( (exec 3<>"/dev/tcp/127.0.0.1/$PORT" && printf 'GET /ready HTTP/1.0\r\n\r\n' >&3 &&
           head -1 <&3) 2>/dev/null || true)
  case $resp in "HTTP/1."?" 200"*) ready=1; break ;; esac
  sleep 0.2
done
kill "$srv"; wait "$srv" || true
[ -n "$ready" ] || { echo "FAIL: serve from the unit's command line"; cat /root/serve.log; exit 1; }
echo "serve: /ready 200 via the unit's ExecStart and /etc/default/airlock"
# remove keeps the conffile, purge drops it; prerm/postrm work without systemd
dpkg -r airlock >/dev/null
if [ -e /usr/bin/airlock ] || ! [ -f /etc/default/airlock ]; then echo "FAIL: dpkg -r"; exit 1; fi
dpkg -P airlock >/dev/null
if [ -e /etc/default/airlock ]; then echo "FAIL: dpkg -P kept the conffile"; exit 1; fi
echo CLEAN-SIDE-OK
EOF

say "clean side: unshare --net --mount --pid chroot (no network; loopback up for serve)"
[ -c "$R/dev/null" ] || { mknod -m 666 "$R/dev/null" c 1 3; mknod -m 666 "$R/dev/zero" c 1 5
                          mknod -m 666 "$R/dev/urandom" c 1 9; mknod -m 666 "$R/dev/random" c 1 8; }
# shellcheck disable=SC2016 # $1 is expanded by the inner sh
unshare --net --mount --pid --fork --propagation private sh -c '
  ip link set lo up && mount -t proc proc "$1/proc" && exec env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
    LANG=C.UTF-8 chroot "$1" /bin/bash /root/clean-side.sh' sh "$R" 2>&1 | tee "$TMP/clean.log"
grep -qx CLEAN-SIDE-OK "$TMP/clean.log"
awk -v r="$R" 'index($2, r "/") == 1 {f = 1} END {exit f}' /proc/mounts ||
  { echo "FAIL: mounts leaked out of the namespace"; exit 1; }
say "PASS"
