#!/usr/bin/env bash
# bench/verify.sh -- verify throughput of `airlock verify` against `sha256sum` and
# `openssl dgst -sha256`, side by side in one run on the same payload from page cache:
#   A: one 2 GiB file          (target: airlock >= 0.9 x openssl dgst)
#   B: 8 files of 256 MiB      (target: airlock >= 1.7 x openssl dgst with 2 cores)
# The bundle is made by `airlock pack`; each tool is timed best-of-2 after a warm-up read.
# Env: AIRLOCK (binary, default ./airlock), BENCH_MIB (total MiB per case, default 2048).
set -euo pipefail
A=${AIRLOCK:-$PWD/airlock}
MIB=${BENCH_MIB:-2048}
W=$(mktemp -d /tmp/airlock-bench.XXXXXX)
trap 'rm -rf "$W"' EXIT
"$A" keygen -W -p "$W/k.pub" -s "$W/k.key" >/dev/null

now() { date +%s.%N; }
best() { # best wall seconds of 2 runs of "$@"
  local b=""
  for _ in 1 2; do
    local t0 t1; t0=$(now); "$@" >/dev/null 2>&1; t1=$(now)
    b=$(python3 -c "import sys; a=float(sys.argv[1])-float(sys.argv[2]); b=sys.argv[3]; print(a if b=='' or a<float(b) else b)" "$t1" "$t0" "$b")
  done
  echo "$b"
}
gen() { # gen FILE MIB: incompressible bytes, fast (AES-CTR keystream)
  head -c $(( $2 * 1024 * 1024 )) /dev/zero |
    openssl enc -aes-128-ctr -nosalt -pass pass:airlock-bench -pbkdf2 2>/dev/null > "$1"
}
rows=()
run_case() { # run_case LABEL NFILES
  local label=$1 n=$2 each=$(( MIB / $2 ))
  rm -rf "$W/src" "$W/B"; mkdir "$W/src"
  for i in $(seq 1 "$n"); do gen "$W/src/f$i.bin" "$each"; done
  "$A" pack "$W/src" -o "$W/B" --name bench --version 1 --key "$W/k.key" >/dev/null
  rm -rf "$W/src"
  local files=("$W"/B/payload/*.bin)
  cat "${files[@]}" > /dev/null   # page cache
  local bytes=$(( each * n * 1024 * 1024 ))
  local t_sha t_ossl t_air
  t_sha=$(best sha256sum "${files[@]}")
  t_ossl=$(best openssl dgst -sha256 "${files[@]}")
  t_air=$(best "$A" verify "$W/B" --trust "$W/k.pub")
  rows+=("$(python3 - "$label" "$bytes" "$t_sha" "$t_ossl" "$t_air" <<'PY'
import sys
label, b, ts, to, ta = sys.argv[1], int(sys.argv[2]), *map(float, sys.argv[3:])
g = lambda t: b / t / 1e9
print(f"{label:<18} {g(ts):>8.2f} {g(to):>8.2f} {g(ta):>8.2f}   {to/ta:>6.2f}x   {ts/ta:>6.2f}x")
PY
)")
  rm -rf "$W/B"
}
run_case "1 x $((MIB)) MiB" 1
run_case "8 x $((MIB / 8)) MiB" 8
echo "verify throughput, GB/s (payload in page cache, $(nproc) CPUs)"
printf '%-18s %8s %8s %8s   %-7s   %-7s\n' case sha256sum openssl airlock 'vs ossl' 'vs sha'
for r in "${rows[@]}"; do echo "$r"; done
echo "targets: 1 file >= 0.90x openssl dgst; 8 files >= 1.70x openssl dgst (2 cores)"
