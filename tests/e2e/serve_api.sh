#!/usr/bin/env bash
# The official openai and @anthropic-ai/sdk npm clients (pinned in tests/api/package-lock.json)
# against a live `airlock serve` on 127.0.0.1, with an API key, the audit log and metrics on.
# Afterwards the audit log must verify and hold the embeddings requests too.
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
  AIRLOCK_EMBED_DIM=64 AIRLOCK_AUDIT=$data/audit.jsonl node --test --test-concurrency=1 api.test.mjs )
# plain curl against /v1/embeddings: the answers' shape without any client library in between
emb() { curl -s -o "$TMP/emb.json" -w '%{http_code}' -H "Authorization: Bearer $key" \
          -H 'Content-Type: application/json' --data-binary @- "http://127.0.0.1:$port/v1/embeddings"; }
st=$(printf '{"model":"stories260K-q8_0","input":["Once upon a time","a cat"]}' | emb)
[ "$st" = 200 ] || { cat "$TMP/emb.json"; echo "embeddings: status $st"; exit 1; }
jq -e '.object == "list" and (.data | length) == 2 and .data[1].index == 1 and
       (.data[0].embedding | length) == 64 and .model == "stories260K-q8_0" and
       .usage.prompt_tokens == .usage.total_tokens and .usage.prompt_tokens > 2' "$TMP/emb.json" >/dev/null
bad() { # bad STATUS PARAM CODE: the body on stdin must be refused with an OpenAI-shaped error
  local st; st=$(emb)
  jq -e --arg p "$2" --arg c "$3" '(.error.message | length) > 0 and .error.type != null and
       .error.param == $p and ($c == "" or .error.code == $c)' "$TMP/emb.json" >/dev/null &&
    [ "$st" = "$1" ] || { cat "$TMP/emb.json"; echo "embeddings: expected $1 ($2 $3), got $st"; exit 1; }
}
printf '{"input":5}' | bad 400 input invalid_type
printf '{"input":{"text":"x"}}' | bad 400 input invalid_type
printf '{"input":[1.5]}' | bad 400 input invalid_type
printf '{"input":[[]]}' | bad 400 input invalid_value
printf '{"input":["ok",null]}' | bad 400 input invalid_type
printf '{"model":"stories260K-q8_0"}' | bad 400 input missing_required_parameter
printf '{"input":"x","encoding_format":1}' | bad 400 encoding_format invalid_type
printf '{"input":"x","dimensions":"64"}' | bad 400 dimensions invalid_type
python3 -c 'import json; print(json.dumps({"input": ["short", "once upon a time " * 3000]}))' |
  bad 400 input context_length_exceeded
grep -q 'input\[1\] has [0-9]* tokens' "$TMP/emb.json"
python3 -c 'import json; print(json.dumps({"input": ["x"] * 2049}))' | bad 400 input invalid_value
kill -TERM $pid
wait $pid
trap - EXIT
grep -q 'shutting down' "$log"
"$AIRLOCK" audit verify "$data/audit.jsonl"
# every request above left a record; prompts are hashed, never stored in clear
! grep -q 'Once upon a time' "$data/audit.jsonl"
grep -q '"endpoint":"/v1/embeddings".*"status":200' "$data/audit.jsonl"
grep -q '"endpoint":"/v1/embeddings".*"status":400' "$data/audit.jsonl"
echo "serve_api: ok"
