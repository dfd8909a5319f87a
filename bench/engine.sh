#!/usr/bin/env bash
# bench/engine.sh -- airlock bench vs llama-bench on the same GGUF files, same thread count, in
# one run. Builds the peer with ../shared/tools/build-llama-cpp.sh (cached under ~/.cache) and
# random-weight models in real shapes with ../shared/tools/make-random-llama.py, quantized by
# the peer's llama-quantize (cached). Prints pp/tg tok/s for both, the ratios, and the decode
# memory-bandwidth bound: weight bytes one decode step reads (all tensors but the unread rows
# of an untied token_embd; airlock bench --json's weight_bytes_per_token) / read bandwidth.
# On a machine shared with other work the read bandwidth and the CPU time a process gets move
# by +-20 % within minutes, so the two tools take turns: ROUNDS rounds of one llama-bench run
# then one airlock bench run (each REPS repetitions after its own warm-up), and the read
# bandwidth (bench/membw.c, 2 MiB pages) is measured before, between and after them. Each
# round gives paired figures: the ratio of the two runs next to each other in time, and each
# engine's fraction of its own bound with the higher of the bandwidths measured just before
# and just after it (the higher never flatters the engine). The table shows medians over the
# rounds and, for the fractions, the lowest and highest round too. membw measures two read
# patterns: one stream per thread (the bound, as STREAM-like tests measure it) and four
# streams per thread far apart, which reads 15-18 % more on the Zen 5 host this was written
# on; the last column is airlock's fraction of that higher bound.
# Env: THREADS (2), PP (512), TG (128), ROUNDS (3), REPS (1), PRESETS ("smollm2-135m
#      tinyllama-1.1b"), QUANTS ("Q8_0 Q4_K_M"), DEPTH (0: both tools' -d, context tokens
#      before each run; the bound counts weight bytes only, so at depth it is looser, for both
#      engines alike).
set -euo pipefail
ROOT=${ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
SHARED=${SHARED:-$(cd "$ROOT/.." && pwd)/shared}
AIRLOCK=${AIRLOCK:-$ROOT/airlock}
THREADS=${THREADS:-2}; PP=${PP:-512}; TG=${TG:-128}; REPS=${REPS:-1}; DEPTH=${DEPTH:-0}
ROUNDS=${ROUNDS:-3}
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
    for r in $(seq "$ROUNDS"); do
      bw1=$("$cache/membw" "$THREADS")
      peer=$("$bin/llama-bench" -m "$m" -t "$THREADS" -p "$PP" -n "$TG" -d "$DEPTH" -r "$REPS" -o json 2>/dev/null)
      bw2=$("$cache/membw" "$THREADS")
      ours=$("$AIRLOCK" bench "$m" -t "$THREADS" -p "$PP" -n "$TG" -d "$DEPTH" -r "$REPS" --json 2>/dev/null)
      bw3=$("$cache/membw" "$THREADS")
      rows+=("$(printf '%s\t%s\t%s\t%s %s %s\t%s\t%s' "$p" "$q" "$(stat -c %s "$m")" "$bw1" "$bw2" "$bw3" "$peer" "$ours" | tr -d '\n')")
    done
  done
done

printf '%s\n' "${rows[@]}" > "$cache/last-rows.tsv"
THREADS="$THREADS" PP="$PP" TG="$TG" DEPTH="$DEPTH" ROUNDS="$ROUNDS" /usr/bin/python3 -c '
import json, os, statistics, sys
pp = int(os.environ["PP"]); tg = int(os.environ["TG"])
print("threads %s, depth %s, %s rounds (llama-bench then airlock bench, taking turns); medians over the rounds; ratios pair the two runs of a round; bound = read bandwidth (higher of the figures measured just before and just after that run) / weight bytes per decoded token; the fractions show median (lowest-highest round)" % (os.environ["THREADS"], os.environ["DEPTH"], os.environ["ROUNDS"]))
print("| model | quant | MiB read/token | llama.cpp pp%d | airlock pp%d | ratio | llama.cpp tg%d | airlock tg%d | ratio | GB/s | llama.cpp/bound | airlock/bound | GB/s, 4 streams | airlock/4-stream bound |" % (pp, pp, tg, tg))
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
def ts(rows, want_pp):
    for r in rows:
        if want_pp and r.get("n_gen") == 0 and r.get("n_prompt", 0) > 0: return r["avg_ts"]
        if not want_pp and r.get("n_prompt") == 0 and r.get("n_gen", 0) > 0: return r["avg_ts"]
    return float("nan")
def load(text):
    try: return json.loads(text)
    except Exception: return []
groups = {}
for line in sys.stdin:
    p, q, size, bws, peer, ours = line.rstrip("\n").split("\t")
    v = [float(x) for x in bws.split()]  # one-stream, four-stream figure of each measurement
    bw1, bw2, bw3 = v[0::2]
    bf1, bf2, bf3 = v[1::2]
    peer, ours = load(peer), load(ours)
    step = next((r["weight_bytes_per_token"] for r in ours if "weight_bytes_per_token" in r), int(size))
    lp, lt, ap, at = ts(peer, True), ts(peer, False), ts(ours, True), ts(ours, False)
    bw_peer, bw_ours = max(bw1, bw2), max(bw2, bw3)
    groups.setdefault((p, q), []).append(dict(step=step, lp=lp, lt=lt, ap=ap, at=at, bw=(bw1, bw2, bw3),
        bf=(bf1, bf2, bf3), rp=ap / lp, rt=at / lt, fp=lt * step / (bw_peer * 1e9),
        fa=at * step / (bw_ours * 1e9), ff=at * step / (max(bf2, bf3) * 1e9)))
med = lambda rs, k: statistics.median(r[k] for r in rs)
span = lambda rs, k: "%.2f (%.2f-%.2f)" % (med(rs, k), min(r[k] for r in rs), max(r[k] for r in rs))
for (p, q), rs in groups.items():
    bws = [b for r in rs for b in r["bw"]]
    bfs = [b for r in rs for b in r["bf"]]
    print("| %s | %s | %.0f | %.1f | %.1f | %.2f | %.1f | %.1f | %.2f | %.1f-%.1f | %s | %s | %.1f-%.1f | %s |" % (
        p, q, rs[0]["step"] / 2**20, med(rs, "lp"), med(rs, "ap"), med(rs, "rp"), med(rs, "lt"),
        med(rs, "at"), med(rs, "rt"), min(bws), max(bws), span(rs, "fp"), span(rs, "fa"),
        min(bfs), max(bfs), span(rs, "ff")))
' < "$cache/last-rows.tsv"
