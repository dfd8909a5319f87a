#!/usr/bin/env bash
# bench/engine.sh -- airlock bench vs llama-bench on the same GGUF files, same thread count, in
# one run. Builds the peer with ../shared/tools/build-llama-cpp.sh (cached under ~/.cache) and
# random-weight models in real shapes with ../shared/tools/make-random-llama.py, quantized by
# the peer's llama-quantize (cached). Prints pp/tg tok/s for both, the ratios, and the decode
# memory-bandwidth bound: weight bytes one decode step reads (all tensors but the unread rows
# of an untied token_embd; airlock bench --json's weight_bytes_per_token) / read bandwidth.
# The bandwidth (bench/membw.c, 2 MiB pages) is measured right before and right after each
# engine's runs and the higher figure is used: on a machine shared with other work it moves
# by +-20 % within minutes, so a bound from another moment says little, and the higher of
# the two never flatters the engine.
# Env: THREADS (2), PP (512), TG (128), REPS (3), PRESETS ("smollm2-135m tinyllama-1.1b"),
#      QUANTS ("Q8_0 Q4_K_M"), DEPTH (0: both tools' -d, context tokens before each run; the
#      bound counts weight bytes only, so at depth it is looser, for both engines alike).
set -euo pipefail
ROOT=${ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
SHARED=${SHARED:-$(cd "$ROOT/.." && pwd)/shared}
AIRLOCK=${AIRLOCK:-$ROOT/airlock}
THREADS=${THREADS:-2}; PP=${PP:-512}; TG=${TG:-128}; REPS=${REPS:-3}; DEPTH=${DEPTH:-0}
PRESETS=${PRESETS:-"smollm2-135m tinyllama-1.1b"}
QUANTS=${QUANTS:-"Q8_0 Q4_K_M"}
cache=${AIRLOCK_BENCH_CACHE:-$HOME/.cache/airlock-bench}
mkdir -p "$cache"

bin=$(bash "$SHARED/tools/build-llama-cpp.sh" | tail -1)
/usr/bin/python3 -c 'import numpy' 2>/dev/null || {
  sudo=; [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get install -y -qq python3-numpy >/dev/null; }

cc -O2 -pthread -o "$cache/membw" "$ROOT/bench/membw.c"

rows=()
for p in $PRESETS; do
  [ -f "$cache/$p-f16.gguf" ] || /usr/bin/python3 "$SHARED/tools/make-random-llama.py" "$p" "$cache/$p-f16.gguf" >/dev/null
  for q in $QUANTS; do
    m="$cache/$p-$q.gguf"
    [ -f "$m" ] || "$bin/llama-quantize" "$cache/$p-f16.gguf" "$m" "$q" >/dev/null 2>&1
    bw1=$("$cache/membw" "$THREADS")
    peer=$("$bin/llama-bench" -m "$m" -t "$THREADS" -p "$PP" -n "$TG" -d "$DEPTH" -r "$REPS" -o json 2>/dev/null)
    bw2=$("$cache/membw" "$THREADS")
    ours=$("$AIRLOCK" bench "$m" -t "$THREADS" -p "$PP" -n "$TG" -d "$DEPTH" -r "$REPS" --json 2>/dev/null)
    bw3=$("$cache/membw" "$THREADS")
    rows+=("$(printf '%s\t%s\t%s\t%s %s %s\t%s\t%s' "$p" "$q" "$(stat -c %s "$m")" "$bw1" "$bw2" "$bw3" "$peer" "$ours" | tr -d '\n')")
  done
done

printf '%s\n' "${rows[@]}" > "$cache/last-rows.tsv"
THREADS="$THREADS" PP="$PP" TG="$TG" DEPTH="$DEPTH" /usr/bin/python3 -c '
import json, os, sys
pp = int(os.environ["PP"]); tg = int(os.environ["TG"])
print("threads %s, depth %s; bound = read bandwidth (higher of the figures measured just before and just after that engine runs) / weight bytes per decoded token" % (os.environ["THREADS"], os.environ["DEPTH"]))
print("| model | quant | MiB read/token | llama.cpp pp%d | airlock pp%d | ratio | llama.cpp tg%d | airlock tg%d | ratio | GB/s (peer / airlock) | llama.cpp/bound | airlock/bound |" % (pp, pp, tg, tg))
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
def ts(rows, want_pp):
    for r in rows:
        if want_pp and r.get("n_gen") == 0 and r.get("n_prompt", 0) > 0: return r["avg_ts"]
        if not want_pp and r.get("n_prompt") == 0 and r.get("n_gen", 0) > 0: return r["avg_ts"]
    return float("nan")
for line in sys.stdin:
    p, q, size, bws, peer, ours = line.rstrip("\n").split("\t")
    bw1, bw2, bw3 = (float(x) for x in bws.split())
    try: peer = json.loads(peer)
    except Exception: peer = []
    try: ours = json.loads(ours)
    except Exception: ours = []
    lp, lt, ap, at = ts(peer, True), ts(peer, False), ts(ours, True), ts(ours, False)
    step = next((r["weight_bytes_per_token"] for r in ours if "weight_bytes_per_token" in r), int(size))
    bw_peer, bw_ours = max(bw1, bw2), max(bw2, bw3)
    bound_peer, bound_ours = bw_peer * 1e9 / step, bw_ours * 1e9 / step
    print(f"| {p} | {q} | {step/2**20:.0f} | {lp:.1f} | {ap:.1f} | {ap/lp:.2f} | {lt:.1f} | {at:.1f} | {at/lt:.2f} | {bw_peer:.1f} / {bw_ours:.1f} | {lt/bound_peer:.2f} | {at/bound_ours:.2f} |")
' < "$cache/last-rows.tsv"
