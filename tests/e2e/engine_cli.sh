#!/usr/bin/env bash
# engine_cli.sh -- the inference commands end to end, through the tokenizer:
#  * run --temp 0 on every stories260K file prints exactly the reference greedy text
#    (reference/*.greedy.jsonl "text", llama.cpp's decode of the same 32 tokens);
#  * run on the random llama/qwen2 models prints the reference text up to the first near tie;
#  * perplexity on reference/story.txt --ctx 128 is within 1 % of llama-perplexity's value;
#  * bench --json has one pp row and one tg row with llama-bench's field names;
#  * a seed reproduces a sampled run; --stop cuts the text; bad options exit 2; an unknown
#    architecture or a missing file exits non-zero with a message.
# The sanitizer binary runs the small models; the release binary the rest.
set -euo pipefail
A=${AIRLOCK:?}
AS=${AIRLOCK_ASAN:-$A}
S=${SHARED:?}
T=${TMP:?}
M=$S/models
R=$M/reference
fail() { echo "FAIL: $*" >&2; exit 1; }

ref_field() { # FILE LINE FIELD -> the field of that jsonl line, as raw text
    python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().splitlines()[int(sys.argv[2])])[sys.argv[3]], end="")' "$@"
}

# --- greedy text equals llama.cpp's for the trained model -------------------------------------
for q in f32 q8_0 q4_0; do
    n=$(wc -l < "$R/stories260K-$q.greedy.jsonl")
    for i in $(seq 0 $((n - 1))); do
        prompt=$(ref_field "$R/stories260K-$q.greedy.jsonl" "$i" prompt)
        want=$(ref_field "$R/stories260K-$q.greedy.jsonl" "$i" text)
        # margins: compare only up to the first reference near tie (< 0.2 for q4_0)
        cut=$(python3 -c 'import json,sys
d=json.loads(open(sys.argv[1]).read().splitlines()[int(sys.argv[2])]); t=float(sys.argv[3])
m=d["margins"]; k=next((j for j,x in enumerate(m) if x<t), len(m)); print(k)' \
            "$R/stories260K-$q.greedy.jsonl" "$i" "$([ $q = q4_0 ] && echo 0.2 || echo 0.05)")
        got=$("$AS" run "$M/stories260K-$q.gguf" -p "$prompt" -n "$cut" --temp 0 -t 2 2>"$T/err") \
            || { cat "$T/err" >&2; fail "run stories260K-$q line $i exited non-zero"; }
        if [ "$cut" -eq 32 ]; then
            [ "$got" = "$want" ] || fail "stories260K-$q line $i: got '$got', want '$want'"
        else
            case "$want" in "$got"*) ;; *) fail "stories260K-$q line $i: '$got' is not a prefix of '$want'";; esac
        fi
    done
done
echo "ok: greedy text matches llama.cpp for stories260K f32/q8_0/q4_0"

# --- perplexity within 1 % --------------------------------------------------------------------
for q in f32 q8_0 q4_0; do
    out=$("$AS" perplexity "$M/stories260K-$q.gguf" "$R/story.txt" --ctx 128 -t 2 2>/dev/null)
    got=$(printf '%s\n' "$out" | sed -n 's/.*PPL = \([0-9.]*\).*/\1/p' | tail -1)
    want=$(sed -n 's/.*PPL = \([0-9.]*\).*/\1/p' "$R/stories260K-$q.ppl.txt")
    python3 -c 'import sys; g,w=map(float,sys.argv[1:]); sys.exit(0 if abs(g-w)<=0.01*w else 1)' "$got" "$want" \
        || fail "stories260K-$q perplexity $got, reference $want"
    echo "ok: stories260K-$q PPL $got (reference $want)"
done

# --- random-weight models load and generate through their own tokenizers ---------------------
for f in llama-k-small-q4_k_m qwen2-k-small-q4_k_m llama2-tiny-random-f16; do
    "$A" run "$M/$f.gguf" -p "Hello world" -n 8 --temp 0 -t 2 > "$T/out" 2>"$T/err" \
        || { cat "$T/err" >&2; fail "run $f"; }
done
echo "ok: llama/qwen2 random models run"

# --- bench --json shape --------------------------------------------------------------------------
"$A" bench "$M/llama-k-small-q8_0.gguf" -t 2 -p 32 -n 8 -r 2 --json > "$T/bench.json" \
    || fail "bench --json exited non-zero"
python3 - "$T/bench.json" <<'EOF' || fail "bench --json rows"
import json, sys
rows = json.load(open(sys.argv[1]))
assert len(rows) == 2, rows
pp, tg = rows
for r in rows:
    for k in ("model_filename", "model_type", "model_size", "model_n_params", "n_prompt", "n_gen",
              "n_threads", "avg_ts", "stddev_ts", "samples_ts"):
        assert k in r, k
    assert r["n_threads"] == 2 and r["avg_ts"] > 0
assert pp["n_prompt"] == 32 and pp["n_gen"] == 0
assert tg["n_prompt"] == 0 and tg["n_gen"] == 8
assert pp["n_depth"] == 0 and tg["n_depth"] == 0
EOF
"$A" bench "$M/stories260K-q8_0.gguf" -t 2 -p 16 -n 4 -r 1 | grep -q '| *pp16 *|' || fail "bench table has no pp16 row"
# -d: the tests run after that many context tokens, prefilled in more than one batch here
"$A" bench "$M/stories260K-q8_0.gguf" -t 2 -p 16 -n 4 -d 100 -b 64 -r 1 > "$T/bench-d.txt" \
    || fail "bench -d exited non-zero"
grep -q '| *pp16 @ d100 *|' "$T/bench-d.txt" || fail "bench -d table has no 'pp16 @ d100' row"
grep -q '| *tg4 @ d100 *|' "$T/bench-d.txt" || fail "bench -d table has no 'tg4 @ d100' row"
"$A" bench "$M/llama-k-small-q8_0.gguf" -t 2 -p 0 -n 4 -d 40 -r 1 --json |
    python3 -c 'import json,sys; r=json.load(sys.stdin); assert len(r)==1 and r[0]["n_depth"]==40 and r[0]["n_gen"]==4, r' \
    || fail "bench -d --json row"
set +e
"$A" bench "$M/stories260K-q8_0.gguf" -d x 2>/dev/null; rc=$?
set -e
[ "$rc" = 2 ] || fail "bench -d x exited $rc, want 2"
echo "ok: bench"

# --- sampling: seeds reproduce, stop strings cut -----------------------------------------------
a=$("$A" run "$M/stories260K-f32.gguf" -p "Once upon a time" -n 24 --temp 1.0 --seed 7 2>/dev/null)
b=$("$A" run "$M/stories260K-f32.gguf" -p "Once upon a time" -n 24 --temp 1.0 --seed 7 2>/dev/null)
[ "$a" = "$b" ] || fail "same seed gave different text"
s=$("$A" run "$M/stories260K-f32.gguf" -p "Once upon a time" -n 32 --temp 0 --stop "Lily" 2>/dev/null)
[ "$s" = ", there was a little girl named " ] || fail "--stop: got '$s'"
echo "ok: seed and stop"

# --- errors --------------------------------------------------------------------------------------
set +e
"$A" run "$M/stories260K-f32.gguf" -p x --temp abc >/dev/null 2>&1; rc=$?
[ $rc -eq 2 ] || fail "bad --temp exited $rc, want 2"
"$A" run "$T/missing.gguf" -p x >/dev/null 2>"$T/err"; rc=$?
[ $rc -ne 0 ] && grep -q missing.gguf "$T/err" || fail "missing model: exit $rc, $(cat "$T/err")"
"$A" perplexity "$M/stories260K-f32.gguf" "$R/prompts-stories.txt" --ctx 128 >/dev/null 2>"$T/err"; rc=$?
[ $rc -eq 4 ] || fail "too little text for perplexity exited $rc, want 4"
set -e
echo "ok: errors"
