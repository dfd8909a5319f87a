#!/usr/bin/env bash
# The official openai and @anthropic-ai/sdk npm clients (pinned in tests/api/package-lock.json)
# against a live `airlock serve` on 127.0.0.1, with an API key, the audit log and metrics on.
# Afterwards the audit log must verify.
set -euo pipefail
: "${AIRLOCK:?}" "${SHARED:?}" "${ROOT:?}" "${TMP:?}"
model=$SHARED/models/stories260K-q8_0.gguf
( cd "$ROOT/tests/api" && npm ci --no-audit --no-fund --silent >/dev/null )
data=$TMP/data
key=$("$AIRLOCK" keys add tester --data "$data" 2>/dev/null)
log=$TMP/serve.log
"$AIRLOCK" serve --model "$model" --host 127.0.0.1 --port 0 --data "$data" --parallel 4 \
  -t 2 >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
port=
for _ in $(seq 1 100); do
  port=$(grep -o 'http://127.0.0.1:[0-9]*' "$log" | head -1 | sed 's/.*://') || true
  [ -n "$port" ] && break
  kill -0 $pid 2>/dev/null || { cat "$log"; echo "serve exited early"; exit 1; }
  sleep 0.1
done
[ -n "$port" ] || { cat "$log"; echo "serve did not report its port"; exit 1; }
curl -sf "http://127.0.0.1:$port/ready" >/dev/null
( cd "$ROOT/tests/api" &&
  AIRLOCK_URL=http://127.0.0.1:$port AIRLOCK_KEY=$key AIRLOCK_MODEL=stories260K-q8_0 \
  AIRLOCK_AUDIT=$data/audit.jsonl node --test --test-concurrency=1 api.test.mjs )
kill -TERM $pid
wait $pid
trap - EXIT
grep -q 'shutting down' "$log"
"$AIRLOCK" audit verify "$data/audit.jsonl"
# every request above left a record; prompts are hashed, never stored in clear
! grep -q 'Once upon a time' "$data/audit.jsonl"
echo "serve_api: ok"
