#!/usr/bin/env bash
# metrics_promtool.sh -- the exposition text of the server's metrics passes Prometheus's own
# linter (`promtool check metrics`, Debian package prometheus). A small C program built against
# build/asan/libairlock.a fills every series of struct metrics_server, with awkward label
# values, and prints metrics_server_render's output.
set -euo pipefail
ROOT=${ROOT:?}
T=${TMP:?}
fail() { echo "FAIL: $*" >&2; exit 1; }
command -v promtool > /dev/null || fail "promtool not installed (apt-get install prometheus)"
[ -f "$ROOT/build/asan/libairlock.a" ] || fail "build/asan/libairlock.a missing (make asan)"
cat > "$T/dump.c" <<'C'
#include <stdio.h>
#include "metrics/metrics.h"
int
main(void)
{
    struct metrics_server m;
    struct al_err e = {0};
    struct buf out;
    if (metrics_server_init(&m, &e) < 0)
        return 1;
    metrics_server_model(&m, "tiny \"model\"", "sha256:0123", "Q8_0");
    metrics_server_request(&m, "/v1/chat/completions", 200, 12, 30, 0.8, 0.05);
    metrics_server_request(&m, "/v1/completions", 429, 0, 0, 0.001, -1);
    metrics_server_request(&m, "/v1/odd\\path\nx", 404, 0, 0, 0.002, -1);
    metrics_server_request(&m, "/v1/embeddings", 200, 9, 0, 0.01, -1);
    metrics_server_embeddings(&m, 3, 9);
    metrics_server_kv(&m, 100, 4096);
    metrics_gauge_set(m.tokens_per_second, 87.25);
    metrics_gauge_set(m.slots, 4);
    buf_init(&out);
    metrics_server_render(&m, &out);
    fwrite(out.data, 1, out.len, stdout);
    buf_free(&out);
    metrics_server_free(&m);
    return 0;
}
C
# shellcheck disable=SC2046
cc -std=c11 -D_GNU_SOURCE -fsanitize=address,undefined -I"$ROOT/src" -o "$T/dump" "$T/dump.c" \
    "$ROOT/build/asan/libairlock.a" $(pkg-config --libs libcrypto jansson libarchive \
    libmicrohttpd libpcre2-8 libseccomp) -lpthread -lm || fail "cannot build the dump program"
"$T/dump" > "$T/metrics.txt"
grep -q '^airlock_requests_total{endpoint="/v1/chat/completions",status="200"} 1$' "$T/metrics.txt" \
    || fail "requests series missing"
grep -q '^process_resident_memory_bytes [1-9]' "$T/metrics.txt" || fail "RSS missing"
grep -q '^airlock_embedding_inputs_total 3$' "$T/metrics.txt" || fail "embedding inputs missing"
grep -q '^airlock_embedding_tokens_total 9$' "$T/metrics.txt" || fail "embedding tokens missing"
if ! promtool check metrics < "$T/metrics.txt" > "$T/lint.txt" 2>&1; then
    cat "$T/lint.txt"; fail "promtool check metrics found problems"
fi
echo "promtool: $(cat "$T/lint.txt")"
echo "PASS metrics_promtool"
