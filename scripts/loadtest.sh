#!/usr/bin/env bash
# scripts/loadtest.sh (`make loadtest`) -- a bounded load test of `airlock serve` on 127.0.0.1:
# a warm-up, then LOADTEST_SECONDS of closed-loop clients (bench/server-load.mjs, Node's fetch):
# streaming chat completions and non-streaming completions at the same time, with an API key and
# the audit log on. Every response must be 200 and complete; the server's RSS is sampled after
# start, after the warm-up and at the end, and may grow by at most LOADTEST_RSS_GROWTH percent
# after the warm-up. Prints request counts, tokens/s, p50/p99 latency and TTFT, and the RSS.
# Env: LOADTEST_SECONDS (30), LOADTEST_WARMUP (5 s), LOADTEST_CONCURRENCY (4 per client kind),
#      LOADTEST_RSS_GROWTH (20), MODEL (the shared stories260K-q8_0), THREADS (1), AIRLOCK.
set -euo pipefail
ROOT=${ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
SHARED=${SHARED:-$(cd "$ROOT/.." && pwd)/shared}
AIRLOCK=${AIRLOCK:-$ROOT/airlock}
SECS=${LOADTEST_SECONDS:-30}; WARM=${LOADTEST_WARMUP:-5}; CONC=${LOADTEST_CONCURRENCY:-4}
GROWTH=${LOADTEST_RSS_GROWTH:-20}; THREADS=${THREADS:-1}
MODEL=${MODEL:-$SHARED/models/stories260K-q8_0.gguf}
fail() { echo "loadtest: FAIL: $*" >&2; exit 1; }
command -v node >/dev/null || fail "node not installed"
[ -x "$AIRLOCK" ] || fail "$AIRLOCK missing (make airlock)"
[ -f "$MODEL" ] || fail "$MODEL missing"
tmp=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
  rm -rf "$tmp"
}
trap cleanup EXIT
key=$("$AIRLOCK" keys add loadtest --data "$tmp/data" 2>/dev/null)
"$AIRLOCK" serve --model "$MODEL" --host 127.0.0.1 --port 0 --data "$tmp/data" \
  --audit-log "$tmp/audit.jsonl" --parallel "$CONC" -t "$THREADS" >"$tmp/serve.log" 2>&1 &
pid=$!
port=
for _ in $(seq 1 300); do
  port=$(grep -o 'on http://127.0.0.1:[0-9]*/' "$tmp/serve.log" | head -1 | sed 's/.*://; s/\///') || true
  [ -n "$port" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$tmp/serve.log"; fail "serve exited early"; }
  sleep 0.1
done
[ -n "$port" ] || { cat "$tmp/serve.log"; fail "serve did not report its port"; }
url=http://127.0.0.1:$port
rss() { awk '/^VmRSS:/ {print $2}' "/proc/$pid/status"; } # KiB
load() { # load SECONDS OUTPUT-PREFIX: both client kinds at once, for SECONDS
  local s=$1 o=$2 t=$(($1 + 120))
  timeout "$t" node "$ROOT/bench/server-load.mjs" --url "$url" --key "$key" --endpoint chat \
    --concurrency "$CONC" --seconds "$s" --max-tokens 24 \
    --prompt "Tell me a story about a dog" --unique >"$o.stream.json" &
  local a=$!
  timeout "$t" node "$ROOT/bench/server-load.mjs" --url "$url" --key "$key" \
    --concurrency "$CONC" --seconds "$s" --max-tokens 16 --no-stream \
    --prompt "Once upon a time" --unique >"$o.plain.json" &
  local b=$!
  local rc=0
  wait $a || rc=1
  wait $b || rc=1
  return $rc
}
rss0=$(rss)
load "$WARM" "$tmp/warm" || fail "warm-up load failed"
rss1=$(rss)
echo "loadtest: ${SECS}s, $CONC streaming chat + $CONC non-streaming completion clients, model $(basename "$MODEL"), $THREADS thread(s)"
load "$SECS" "$tmp/main" || fail "load generator failed"
kill -0 "$pid" 2>/dev/null || { tail -30 "$tmp/serve.log"; fail "the server died under load"; }
rss2=$(rss)
curl -sf "$url/health" >/dev/null || fail "/health does not answer after the load"
kill -TERM "$pid"
src=0
wait "$pid" || src=$?
pid=
[ "$src" -eq 0 ] || fail "serve exited with status $src after SIGTERM"
"$AIRLOCK" audit verify "$tmp/audit.jsonl" >/dev/null 2>&1 || fail "the audit log does not verify"
python3 - "$tmp" "$rss0" "$rss1" "$rss2" "$GROWTH" <<'PY'
import json, sys
tmp, rss0, rss1, rss2, growth = sys.argv[1], *map(int, sys.argv[2:5]), float(sys.argv[5])
bad = []
for kind in ("stream", "plain"):
    r = json.load(open("%s/main.%s.json" % (tmp, kind)))
    w = json.load(open("%s/warm.%s.json" % (tmp, kind)))
    label = "streaming chat" if kind == "stream" else "completions"
    print("  %-15s %5d requests, %d errors %s, %.1f tok/s, latency p50 %s ms p99 %s ms%s" % (
        label, r["requests"], r["errors"], r["statuses"], r["tok_s"], r["lat_p50_ms"],
        r["lat_p99_ms"], ", TTFT p50 %s ms p99 %s ms" % (r["ttft_p50_ms"], r["ttft_p99_ms"])
        if kind == "stream" else ""))
    for name, x in (("warm-up", w), ("load", r)):
        if x["errors"] or x["requests"] == 0:
            bad.append("%s %s: %d of %d requests failed %s %s" % (
                label, name, x["errors"], x["requests"], x["statuses"], x["first_error"] or ""))
pct = 100.0 * (rss2 - rss1) / rss1
print("  RSS: %.1f MiB at start, %.1f MiB after warm-up, %.1f MiB at the end (%+.1f %%, limit %+.0f %%)"
      % (rss0 / 1024, rss1 / 1024, rss2 / 1024, pct, growth))
if pct > growth:
    bad.append("RSS grew by %.1f %% after the warm-up" % pct)
for b in bad:
    print("loadtest: FAIL: " + b, file=sys.stderr)
print("loadtest: " + ("FAIL" if bad else "ok"))
sys.exit(1 if bad else 0)
PY
