#!/usr/bin/env bash
# inspect_safety.sh -- `airlock inspect` safety verdicts on the fixtures in
# tests/vectors/safety (pickles of every protocol, a torch.save-style zip, code, inert data),
# in text and --json, plus usage and I/O exit statuses.
set -euo pipefail
: "${AIRLOCK:?}" "${AIRLOCK_ASAN:?}" "${ROOT:?}" "${TMP:?}"
V=$ROOT/tests/vectors/safety
fail=0
bad() { echo "FAIL: $*"; fail=1; }

verdict() { # file, expected class, expected format
  local out
  out=$("$AIRLOCK_ASAN" inspect --json "$V/$1") || { bad "$1: inspect failed"; return; }
  local got
  got=$(printf '%s' "$out" | node -e '
    let s = ""; process.stdin.on("data", d => s += d).on("end", () => {
      const j = JSON.parse(s); console.log(j.safety.class + " " + j.safety.format); });')
  [ "$got" = "$2 $3" ] || bad "$1: verdict '$got', want '$2 $3'"
}
verdict pickle-p0.pkl        pickle pickle
verdict pickle-p1.bin        pickle pickle
verdict pickle-p2.pt         pickle pickle
verdict pickle-p4.pth        pickle pickle
verdict pickle-p5.ckpt       pickle pickle
verdict pickle-p2-noext.dat  pickle pickle
verdict pickle-p0-global.txt pickle pickle
verdict torch-zip.pt         pickle zip-pickle
verdict ordered-p2.pkl       pickle pickle
verdict ordered-p4.pkl       pickle pickle
verdict plain.zip            data   zip
verdict modeling_x.py        code   python
verdict script.sh            code   script
verdict config.json          data   json
verdict model-card.md        data   text
verdict make-vectors.py      code   python

# text output warns loudly about pickles and code
"$AIRLOCK" inspect "$V/torch-zip.pt" | grep -q "^WARNING: loading this file runs a pickle" ||
  bad "no pickle warning in text output"
"$AIRLOCK" inspect "$V/script.sh" | grep -q "^WARNING: this file is executable code" ||
  bad "no code warning in text output"

# what a pickle imports is shown without running it
"$AIRLOCK" inspect "$V/ordered-p4.pkl" | grep -q "^pickle imports: collections.OrderedDict$" ||
  bad "ordered-p4.pkl: imports not listed"
"$AIRLOCK" inspect "$V/pickle-p0-global.txt" | grep -q "^pickle imports: builtins.print$" ||
  bad "pickle-p0-global.txt: imports not listed"

# an ELF binary and a shared object by name
"$AIRLOCK" inspect "$AIRLOCK" | grep -q "safety: code (elf" || bad "airlock binary not code/elf"
: > "$TMP/libfoo.so.1"
"$AIRLOCK" inspect "$TMP/libfoo.so.1" | grep -q "safety: code (shared-object" || bad ".so.1"

# exit statuses: usage 2, missing file 3, not a regular file 4, symlink refused
rc=0; "$AIRLOCK" inspect > /dev/null 2>&1 || rc=$?
[ "$rc" -eq 2 ] || bad "no FILE: exit $rc, want 2"
rc=0; "$AIRLOCK" inspect --bogus x > /dev/null 2>&1 || rc=$?
[ "$rc" -eq 2 ] || bad "bad option: exit $rc, want 2"
rc=0; "$AIRLOCK" inspect "$TMP/does-not-exist" > /dev/null 2>&1 || rc=$?
[ "$rc" -eq 3 ] || bad "missing file: exit $rc, want 3"
ln -s "$V/config.json" "$TMP/link.json"
rc=0; "$AIRLOCK" inspect "$TMP/link.json" > /dev/null 2>&1 || rc=$?
[ "$rc" -ne 0 ] || bad "symlink followed"
"$AIRLOCK" inspect --help | grep -q "^Usage: airlock inspect FILE" || bad "--help"

# a .gguf name whose bytes are not GGUF is an input error, not data
printf 'hello' > "$TMP/fake.gguf"
rc=0; "$AIRLOCK" inspect "$TMP/fake.gguf" > /dev/null 2>&1 || rc=$?
[ "$rc" -eq 4 ] || bad "fake.gguf: exit $rc, want 4"

[ "$fail" -eq 0 ] && echo "inspect_safety: all checks passed"
exit "$fail"
