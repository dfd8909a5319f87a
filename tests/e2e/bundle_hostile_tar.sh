#!/usr/bin/env bash
# bundle_hostile_tar.sh -- hand-made hostile tars fed to `verify --extract`: path traversal,
# a symlink then a file through it, hard links, absolute paths, duplicates, devices, over-long
# and control-character names, non-POSIX formats. Each must be refused, nothing may appear
# outside DEST, and nothing may be left at DEST (not even the temp dir). Runs the release and
# the sanitizer builds.
set -euo pipefail
cd "$TMP"
fails=0
mkdir -p outside
python3 - "$TMP" <<'PY'
import io, sys, tarfile
tmp = sys.argv[1]
def add(t, name, data=b'x', **kw):
    ti = tarfile.TarInfo(name)
    for k, v in kw.items():
        setattr(ti, k, v)
    if ti.type in (tarfile.REGTYPE, tarfile.AREGTYPE):
        ti.size = len(data)
        t.addfile(ti, io.BytesIO(data))
    else:
        t.addfile(ti)
def mk(name, fmt=tarfile.PAX_FORMAT):
    return tarfile.open(f'{tmp}/{name}.tar', 'w', format=fmt)
with mk('traversal') as t:
    add(t, 'payload/ok', b'fine')
    add(t, '../outside/evil', b'pwned')
with mk('traversal_deep') as t:
    add(t, 'payload/a/../../../outside/evil2', b'pwned')
with mk('symlink_then_file') as t:
    add(t, 'payload/link', type=tarfile.SYMTYPE, linkname=f'{tmp}/outside')
    add(t, 'payload/link/evil3', b'pwned')
with mk('hardlink') as t:
    add(t, 'payload/a', b'data')
    add(t, 'payload/h', type=tarfile.LNKTYPE, linkname='/etc/passwd')
with mk('absolute') as t:
    add(t, f'{tmp}/outside/evil4', b'pwned')
with mk('duplicate') as t:
    add(t, 'payload/a', b'first')
    add(t, 'payload/a', b'second')
with mk('device') as t:
    add(t, 'payload/null', type=tarfile.CHRTYPE, devmajor=1, devminor=3)
with mk('fifo') as t:
    add(t, 'payload/fifo', type=tarfile.FIFOTYPE)
with mk('long_component') as t:
    add(t, 'payload/' + 'n' * 300, b'x')
with mk('long_path') as t:
    add(t, 'payload/' + '/'.join(['d' * 200] * 25), b'x')
with mk('control_char') as t:
    add(t, 'payload/bad\x1bname', b'x')
with mk('gnu_format', tarfile.GNU_FORMAT) as t:
    add(t, 'payload/' + 'g' * 120, b'x')
with mk('dotdot_dir') as t:
    add(t, 'payload/..', type=tarfile.DIRTYPE)
open(f'{tmp}/garbage.tar', 'wb').write(b'\x00' * 100 + b'not a tar at all' * 64)
PY
for bin in "${AIRLOCK:?}" "${AIRLOCK_ASAN:-$AIRLOCK}"; do
  "$bin" keygen -W -p k.pub -s k.key --force >/dev/null
  for t in traversal traversal_deep symlink_then_file hardlink absolute duplicate device fifo \
           long_component long_path control_char gnu_format dotdot_dir garbage; do
    rm -rf dest .dest.airlock-*
    rc=0
    "$bin" verify "$t.tar" --trust k.pub --extract dest > out.txt 2> err.txt || rc=$?
    why=""
    [ "$rc" -eq 1 ] || [ "$rc" -eq 4 ] || why="exit $rc (expected 1 or 4)"
    grep -q 'AddressSanitizer\|runtime error' err.txt && why="sanitizer report"
    [ -e dest ] && why="$why; dest exists"
    ls -d .dest.airlock-* >/dev/null 2>&1 && why="$why; temp dir left"
    [ -z "$(ls -A outside)" ] || why="$why; wrote outside: $(ls -A outside)"
    if [ -n "$why" ]; then
      echo "FAIL $(basename "$bin") $t: $why"; cat err.txt; fails=$((fails + 1))
    else
      echo "ok   $(basename "$bin") $t: $(head -1 err.txt)"
    fi
  done
done
if [ "$fails" -ne 0 ]; then echo "$fails hostile tar case(s) failed"; exit 1; fi
echo "bundle_hostile_tar: all hostile tars refused"
