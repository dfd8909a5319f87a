#!/usr/bin/env bash
# Debian's real Prometheus scrapes a live `airlock serve` every second; after a few requests the
# series airlock_requests_total and airlock_embedding_inputs_total are read back through
# Prometheus's own HTTP API (/api/v1/query) and must hold the exact counts. Prometheus gets a
# static scrape target on 127.0.0.1 only (no service discovery, remote write, alerting or rule
# files), listens on 127.0.0.1, keeps its TSDB in TMP, and both processes are killed at the end.
# Bounded: at most ~60 s of waiting.
set -euo pipefail
: "${AIRLOCK:?}" "${SHARED:?}" "${TMP:?}"
fail() { echo "FAIL: $*" >&2; exit 1; }
command -v prometheus >/dev/null || fail "prometheus not installed (apt-get install prometheus)"
command -v curl >/dev/null || fail "curl not installed"
command -v python3 >/dev/null || fail "python3 not installed"
model=$SHARED/models/stories260K-q8_0.gguf
data=$TMP/data
key=$("$AIRLOCK" keys add prom --data "$data" 2>/dev/null)
log=$TMP/serve.log
"$AIRLOCK" serve --model "$model" --host 127.0.0.1 --port 0 --data "$data" \
  --audit-log off --parallel 2 -t 1 >"$log" 2>&1 &
apid=$!
ppid_=
cleanup() {
  [ -n "$ppid_" ] && { kill "$ppid_" 2>/dev/null || true; wait "$ppid_" 2>/dev/null || true; }
  kill $apid 2>/dev/null || true
  wait $apid 2>/dev/null || true
}
trap cleanup EXIT
port=
for _ in $(seq 1 100); do
  port=$(grep -o 'on http://127.0.0.1:[0-9]*/' "$log" | head -1 | sed 's/.*://; s/\///') || true
  [ -n "$port" ] && break
  kill -0 $apid 2>/dev/null || { cat "$log"; fail "serve exited early"; }
  sleep 0.1
done
[ -n "$port" ] || { cat "$log"; fail "serve did not report its port"; }
base=http://127.0.0.1:$port

# a free loopback port for Prometheus (bind to 0, read it, release it)
pport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$TMP/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: airlock
    metrics_path: /metrics
    scheme: http
    static_configs:
      - targets: ["127.0.0.1:$port"]
EOF
promtool check config "$TMP/prometheus.yml" >/dev/null || fail "promtool rejects the config"
prometheus --config.file="$TMP/prometheus.yml" --storage.tsdb.path="$TMP/tsdb" \
  --web.listen-address="127.0.0.1:$pport" --storage.tsdb.retention.time=1h \
  >"$TMP/prom.log" 2>&1 &
ppid_=$!
prom=http://127.0.0.1:$pport
ok=
for _ in $(seq 1 150); do
  if curl -sf "$prom/-/ready" >/dev/null 2>&1; then ok=1; break; fi
  kill -0 "$ppid_" 2>/dev/null || { cat "$TMP/prom.log"; fail "prometheus exited early"; }
  sleep 0.2
done
[ -n "$ok" ] || { tail -20 "$TMP/prom.log"; fail "prometheus not ready within 30 s"; }

# traffic: 3 chat completions (200), 2 completions (200), 1 unauthenticated call (401),
# 1 embeddings request with 2 inputs (200)
for i in 1 2 3; do
  curl -sf "$base/v1/chat/completions" -H "Authorization: Bearer $key" \
    -d '{"messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":4}' >/dev/null \
    || fail "chat request $i failed"
done
for i in 1 2; do
  curl -sf "$base/v1/completions" -H "Authorization: Bearer $key" \
    -d '{"prompt":"Once","max_tokens":4}' >/dev/null || fail "completion request $i failed"
done
code=$(curl -s -o /dev/null -w '%{http_code}' "$base/v1/chat/completions" \
  -d '{"messages":[{"role":"user","content":"hi"}],"max_tokens":4}')
[ "$code" = 401 ] || fail "unauthenticated request gave $code, not 401"
curl -sf "$base/v1/embeddings" -H "Authorization: Bearer $key" \
  -d '{"input":["Once upon a time","A dog ran."]}' >/dev/null || fail "embeddings request failed"

# value of an instant query through Prometheus's HTTP API ("" while it has no sample yet)
query() {
  curl -sf -G "$prom/api/v1/query" --data-urlencode "query=$1" | python3 -c '
import json, sys
j = json.load(sys.stdin)
assert j["status"] == "success", j
r = j["data"]["result"]
print(r[0]["value"][1] if r else "")'
}
want() { # want QUERY VALUE: wait (bounded) until the query returns VALUE
  local got=
  for _ in $(seq 1 60); do
    got=$(query "$1") || got=
    [ "$got" = "$2" ] && { echo "ok   $1 = $got"; return 0; }
    sleep 0.5
  done
  echo "FAIL $1 = '${got}', expected $2" >&2
  curl -s "$prom/api/v1/targets" | head -c 2000 >&2 || true
  return 1
}
rc=0
want 'up{job="airlock"}' 1 || rc=1
want 'airlock_requests_total{job="airlock",endpoint="/v1/chat/completions",status="200"}' 3 || rc=1
want 'airlock_requests_total{job="airlock",endpoint="/v1/completions",status="200"}' 2 || rc=1
want 'airlock_requests_total{job="airlock",endpoint="/v1/chat/completions",status="401"}' 1 || rc=1
want 'sum(airlock_completion_tokens_total{job="airlock"}) > bool 0' 1 || rc=1
want 'airlock_requests_total{job="airlock",endpoint="/v1/embeddings",status="200"}' 1 || rc=1
want 'airlock_embedding_inputs_total{job="airlock"}' 2 || rc=1
want 'sum(airlock_embedding_tokens_total{job="airlock"}) > bool 0' 1 || rc=1
want 'count(airlock_model_info{job="airlock",model="stories260K-q8_0"})' 1 || rc=1
[ "$rc" -eq 0 ] || fail "Prometheus did not see the expected series"
echo "PASS serve_prometheus"
