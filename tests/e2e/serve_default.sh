#!/usr/bin/env bash
# `airlock serve` with no --model serves the embedded stories260K (checked by SHA-256 at start):
# /ready, the chat page with its Content-Security-Policy, /status naming the model, a story
# continuation through the API, and --no-auth refused on a non-loopback address.
set -euo pipefail
: "${AIRLOCK:?}" "${TMP:?}"
if "$AIRLOCK" serve --no-auth --host 0.0.0.0 --port 0 --data "$TMP/x" 2>"$TMP/err"; then
  echo "--no-auth on 0.0.0.0 was accepted"; exit 1
fi
grep -q 'loopback' "$TMP/err"
log=$TMP/serve.log
"$AIRLOCK" serve --no-auth --host 127.0.0.1 --port 0 --data "$TMP/data" >"$log" 2>&1 &
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
grep -q 'WARNING: --no-auth' "$log"
u=http://127.0.0.1:$port
test "$(curl -s -o /dev/null -w '%{http_code}' "$u/ready")" = 200
curl -sfD "$TMP/h" "$u/" -o "$TMP/page.html"
grep -qi "^content-security-policy: default-src 'none'" "$TMP/h"
! grep -qE 'https?://' "$TMP/page.html"
curl -sf "$u/app.js" | grep -q "fetch('/v1/chat/completions'"
curl -sf "$u/status" > "$TMP/status.json"
grep -q '"id":"stories260K"' "$TMP/status.json"
grep -q '270cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d' "$TMP/status.json"
curl -sf "$u/v1/completions" -d '{"prompt":"Once upon a time","max_tokens":24,"temperature":0}' > "$TMP/c.json"
grep -q 'there was a little' "$TMP/c.json" || { cat "$TMP/c.json"; exit 1; }
echo "serve_default: ok"
