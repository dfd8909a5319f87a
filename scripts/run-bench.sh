#!/usr/bin/env bash
# make bench: every benchmark, each measuring airlock side by side with its peer in one run.
#   bench/verify.sh        hashing/verify throughput vs sha256sum and openssl dgst
#   bench/engine.sh        prefill/decode tok/s vs llama-bench (builds the peer, cached)
#   bench/bench_kernels.c  kernel GB/s and GFLOP/s per type and ISA
set -u
export ROOT=$PWD
export SHARED=${SHARED:-$(cd .. && pwd)/shared}
export AIRLOCK=$ROOT/airlock
rc=0
for b in bench/*.sh; do
  [ -e "$b" ] || continue
  echo "=== $b"
  bash "$b" || { echo "bench: $b failed"; rc=1; }
done
if [ -f bench/bench_kernels.c ]; then
  echo "=== bench/bench_kernels.c"
  make -s build/rel/libairlock.a &&
  ${CC:-cc} -std=c11 -D_GNU_SOURCE -O2 -Isrc -o build/bench_kernels bench/bench_kernels.c \
    build/rel/libairlock.a $(pkg-config --libs libcrypto jansson libarchive libmicrohttpd libpcre2-8 libseccomp) -lpthread -lm &&
  build/bench_kernels || rc=1
fi
exit $rc
