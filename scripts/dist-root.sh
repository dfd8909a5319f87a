#!/usr/bin/env bash
# scripts/dist-root.sh -- the clean side of tests/e2e/dist_offline_install.sh: a minimal
# Debian 12 root, made once from the Debian mirror and cached as a tarball; prints its path.
#   mmdebstrap --variant=minbase: Essential: yes + Priority: required + apt, the package set
#   `debootstrap --variant=minbase` installs and scripts/dist.sh assumes at base_set (the
#   merged-usr hook sets up /usr as debootstrap does, with usr-is-merged instead of usrmerge
#   and perl). mmdebstrap downloads with apt in parallel and writes the tarball itself.
# Callers serialise on $CACHE/lock: `make test` starts this in the background right after the
# build, so the download and dpkg run overlap the unit tests, and the e2e test, which calls it
# again, waits for that run instead of starting a second one.
# The cache is rebuilt when older than DIST_ROOT_MAX_DAYS (30): bookworm's point releases move
# on, and the carried packages are checked against what a fresh install would have.
# Env: MIRROR (http://deb.debian.org/debian), XDG_CACHE_HOME, DIST_ROOT_MAX_DAYS.
# Needs root (mmdebstrap --mode=root mounts /proc and /dev in the root it builds; that runs
# in a private mount namespace, so no mount outlives it).
set -euo pipefail
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/airlock-dist
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
MAXDAYS=${DIST_ROOT_MAX_DAYS:-30}
arch=$(dpkg --print-architecture)
tarball=$CACHE/$SUITE-minbase-$arch.tar
say() { printf 'dist-root: %s\n' "$*" >&2; }
if [ "$(id -u)" -ne 0 ]; then # as deps.sh does: root through sudo, or say so
  sudo -n true 2>/dev/null || { say "needs root or passwordless sudo (mmdebstrap --mode=root)"; exit 2; }
  exec sudo -n env PATH="$PATH" XDG_CACHE_HOME="${XDG_CACHE_HOME:-$HOME/.cache}" MIRROR="$MIRROR" \
    DIST_ROOT_MAX_DAYS="$MAXDAYS" bash "$0" "$@"
fi
command -v mmdebstrap >/dev/null || { say "mmdebstrap missing (make deps)"; exit 2; }
hooks=/usr/share/mmdebstrap/hooks/merged-usr
[ -d "$hooks" ] || { say "$hooks missing (mmdebstrap too old?)"; exit 2; }
mkdir -p "$CACHE"

exec 9> "$CACHE/lock"
if ! flock -n 9; then
  say "another run is making the root; waiting for it"
  flock -w 1200 9 || { say "gave up waiting for $CACHE/lock"; exit 3; }
fi
if [ -s "$tarball" ] && [ -z "$(find "$tarball" -mtime +"$MAXDAYS")" ]; then
  say "cached: $tarball"
  echo "$tarball"
  exit 0
fi

work=$(mktemp -d "$CACHE/work.XXXXXX")
cleanup() {
  # mmdebstrap's mounts are in the namespace below and die with it; never delete through one
  if awk -v w="$work" '$2 == w || index($2, w "/") == 1 {f = 1} END {exit !f}' /proc/mounts; then
    say "mounts remain under $work; not removing it"
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
t0=$(date +%s)
say "mmdebstrap --variant=minbase $SUITE from $MIRROR (cold; cached afterwards in $tarball)"
# TMPDIR: mmdebstrap builds the root in a temporary directory, here under $work; 9>&-: the
# lock is this script's alone, no process mmdebstrap leaves behind can keep holding it
if ! TMPDIR=$work timeout 900 unshare --mount --propagation private \
     mmdebstrap --quiet --mode=root --variant=minbase --format=tar --hook-dir="$hooks" \
       --dpkgopt=force-unsafe-io --aptopt='Acquire::Retries "3"' \
       "$SUITE" "$work/root.tar" "$MIRROR" > "$work/mmdebstrap.log" 2>&1 9>&-; then
  tail -30 "$work/mmdebstrap.log" >&2
  say "mmdebstrap failed after $(( $(date +%s) - t0 ))s"
  exit 3
fi
mv -f "$work/root.tar" "$tarball"
rm -f "$CACHE/$SUITE-minbase-$arch.tar.gz" # the debootstrap tarball earlier versions cached
times > "$work/times" # line 2: user and system time of mmdebstrap and its children
cpu=$(awk 'NR == 2 { t = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); t += a[1] * 60 + a[2] }
                     printf "%d", t + 0.5 }' "$work/times")
say "made $tarball ($(( $(stat -c %s "$tarball") / 1048576 )) MiB) in $(( $(date +%s) - t0 ))s (${cpu}s cpu)"
echo "$tarball"
