#!/usr/bin/env bash
# bench/server.sh -- `airlock serve --parallel 8` against llama.cpp's `llama-server -np 8` in one
# run: same GGUF, same thread count, same context per slot, same prompts (each request's number
# is put in front so that neither server can reuse a cached prefix), 1/4/8 concurrent streaming
# clients (bench/server-load.mjs, Node's built-in fetch, SSE to /v1/completions). Prints
# aggregate generated tokens/s, TTFT p50/p99 and the ratio airlock/llama-server per concurrency,
# then how 8 concurrent streams compare with 8 x one stream's share (no batching: 8 streams would
# split one stream's throughput, so the aggregate would stay at the 1-stream figure).
# Env: MODEL (smollm2-135m-Q8_0 from ~/.cache/airlock-bench, else the shared llama-k-small),
#      THREADS (2), CTX (512 per slot), CONCS ("1 4 8"), MAX_TOKENS (64), REQS (2 per client),
#      AIRLOCK (./airlock), LLAMA_BIN (from ../shared/tools/build-llama-cpp.sh), LOAD_TIMEOUT
#      (300 s per level).
set -euo pipefail
ROOT=${ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
SHARED=${SHARED:-$(cd "$ROOT/.." && pwd)/shared}
AIRLOCK=${AIRLOCK:-$ROOT/airlock}
THREADS=${THREADS:-2}; CTX=${CTX:-512}; CONCS=${CONCS:-"1 4 8"}; MAX_TOKENS=${MAX_TOKENS:-64}
REQS=${REQS:-2}; PARALLEL=8
MODEL=${MODEL:-$HOME/.cache/airlock-bench/smollm2-135m-Q8_0.gguf}
[ -f "$MODEL" ] || MODEL=$SHARED/models/llama-k-small-q8_0.gguf
[ -f "$MODEL" ] || { echo "bench/server: no model ($MODEL)" >&2; exit 1; }
LLAMA_BIN=${LLAMA_BIN:-$(bash "$SHARED/tools/build-llama-cpp.sh" | tail -1)}
[ -x "$LLAMA_BIN/llama-server" ] || { echo "bench/server: no llama-server in $LLAMA_BIN" >&2; exit 1; }
command -v node >/dev/null || { echo "bench/server: node not installed" >&2; exit 1; }
tmp=$(mktemp -d)
spid=
cleanup() {
  [ -n "$spid" ] && { kill "$spid" 2>/dev/null || true; wait "$spid" 2>/dev/null || true; }
  rm -rf "$tmp"
}
trap cleanup EXIT
PROMPT="The old lighthouse keeper climbed the narrow stairs every evening to light the lamp. \
One stormy night he saw a small boat struggling against the waves near the rocks, and he"
load() { # load URL CONCURRENCY REQUESTS
  timeout "${LOAD_TIMEOUT:-300}" node "$ROOT/bench/server-load.mjs" --url "$1" \
    --concurrency "$2" --requests "$3" --max-tokens "$MAX_TOKENS" --prompt "$PROMPT" --unique
}
run_levels() { # run_levels NAME URL: a warm-up request, then each concurrency level
  load "$2" 1 1 >/dev/null
  for c in $CONCS; do
    n=$((c * REQS)); [ "$n" -lt 2 ] && n=2
    printf '%s\t%s\t%s\n' "$1" "$c" "$(load "$2" "$c" "$n")" >>"$tmp/results.tsv"
  done
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { # wait_http URL PID: until URL answers 200 (model loaded), at most 120 s
  for _ in $(seq 1 600); do
    curl -sf "$1" >/dev/null 2>&1 && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.2
  done
  return 1
}

# --- airlock serve ---
"$AIRLOCK" serve --model "$MODEL" --host 127.0.0.1 --port 0 --no-auth --audit-log off \
  --parallel $PARALLEL --ctx "$CTX" -t "$THREADS" >"$tmp/airlock.log" 2>&1 &
spid=$!
port=
for _ in $(seq 1 300); do
  port=$(grep -o 'on http://127.0.0.1:[0-9]*/' "$tmp/airlock.log" | head -1 | sed 's/.*://; s/\///') || true
  [ -n "$port" ] && break
  sleep 0.1
done
if [ -z "$port" ] || ! wait_http "http://127.0.0.1:$port/ready" "$spid"; then
  cat "$tmp/airlock.log"; echo "bench/server: airlock serve did not start" >&2; exit 1
fi
run_levels airlock "http://127.0.0.1:$port"
kill "$spid"; wait "$spid" 2>/dev/null || true; spid=

# --- llama-server: same model, threads, slots and context per slot (-c is the total) ---
port=$(free_port)
"$LLAMA_BIN/llama-server" -m "$MODEL" --host 127.0.0.1 --port "$port" -t "$THREADS" \
  -tb "$THREADS" -np $PARALLEL -c $((CTX * PARALLEL)) -cb --no-kv-unified --no-webui \
  >"$tmp/llama.log" 2>&1 &
spid=$!
wait_http "http://127.0.0.1:$port/health" "$spid" ||
  { tail -20 "$tmp/llama.log"; echo "bench/server: llama-server did not start" >&2; exit 1; }
run_levels llama "http://127.0.0.1:$port"
kill "$spid"; wait "$spid" 2>/dev/null || true; spid=

MODEL="$MODEL" THREADS="$THREADS" CTX="$CTX" MAX_TOKENS="$MAX_TOKENS" python3 - "$tmp/results.tsv" <<'PY'
import json, os, sys
res = {}
for line in open(sys.argv[1]):
    name, c, j = line.rstrip("\n").split("\t", 2)
    res[(name, int(c))] = json.loads(j)
print("model %s, %s threads, ctx %s per slot, 8 slots, %s tokens per request, streaming"
      % (os.path.basename(os.environ["MODEL"]), os.environ["THREADS"], os.environ["CTX"],
         os.environ["MAX_TOKENS"]))
print("| clients | airlock tok/s | llama-server tok/s | ratio | airlock TTFT p50/p99 ms "
      "| llama-server TTFT p50/p99 ms | errors a/l |")
print("|---|---|---|---|---|---|---|")
def r(x):
    return "-" if x is None else ("%.0f" % x if x >= 100 else "%.1f" % x)
for c in sorted({c for _, c in res}):
    a, l = res.get(("airlock", c), {}), res.get(("llama", c), {})
    ratio = a.get("tok_s", 0) / l["tok_s"] if l.get("tok_s") else float("nan")
    print("| %d | %s | %s | %.2f | %s / %s | %s / %s | %s/%s |" % (
        c, r(a.get("tok_s")), r(l.get("tok_s")), ratio, r(a.get("ttft_p50_ms")),
        r(a.get("ttft_p99_ms")), r(l.get("ttft_p50_ms")), r(l.get("ttft_p99_ms")),
        a.get("errors", "-"), l.get("errors", "-")))
for name, label in (("airlock", "airlock"), ("llama", "llama-server")):
    one, eight = res.get((name, 1)), res.get((name, 8))
    if not one or not eight or not one["tok_s"]:
        continue
    print("%s: 8 streams %.1f tok/s aggregate (%.1f tok/s each) vs 8 x one stream's share "
          "(%.1f/8 x 8 = %.1f tok/s): x%.2f" % (label, eight["tok_s"], eight["stream_tok_s"] or 0,
          one["tok_s"], one["tok_s"], eight["tok_s"] / one["tok_s"]))
PY
