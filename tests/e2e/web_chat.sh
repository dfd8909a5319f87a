#!/usr/bin/env bash
# The chat page at / in Debian's headless Chromium (playwright-core): streamed tokens appear,
# the stop button stops a generation, the page never contacts another origin. Serves the
# random-weight llama-k-small model with a long context, so a generation runs long enough to be
# stopped from the page (the embedded model is checked by serve_default.sh).
# Screenshot: build/results/web-chat.png
set -euo pipefail
: "${AIRLOCK:?}" "${ROOT:?}" "${TMP:?}" "${SHARED:?}"
( cd "$ROOT/tests/api" && npm ci --no-audit --no-fund --silent >/dev/null )
data=$TMP/data
key=$("$AIRLOCK" keys add browser --data "$data" 2>/dev/null)
log=$TMP/serve.log
"$AIRLOCK" serve --model "$SHARED/models/llama-k-small-q4_0.gguf" --ctx 8192 --parallel 1 \
  --host 127.0.0.1 --port 0 --data "$data" -t 1 >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
port=
for _ in $(seq 1 100); do
  port=$(grep -o 'http://127.0.0.1:[0-9]*' "$log" | head -1 | sed 's/.*://') || true
  [ -n "$port" ] && break
  kill -0 $pid 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.1
done
[ -n "$port" ] || { cat "$log"; exit 1; }
curl -sf "http://127.0.0.1:$port/ready" >/dev/null
# the page itself: CSP header, no absolute external URL
curl -sfD "$TMP/h" "http://127.0.0.1:$port/" -o "$TMP/index.html"
grep -qi '^content-security-policy:.*default-src' "$TMP/h"
! grep -qE 'https?://' "$TMP/index.html"
( cd "$ROOT/tests/api" && AIRLOCK_URL=http://127.0.0.1:$port AIRLOCK_KEY=$key \
  ARTIFACTS="$ROOT/build/results" node --test web.test.mjs )
echo "web_chat: ok"
