#!/usr/bin/env bash
# make run: serve the embedded default model (or $MODEL) on 127.0.0.1:$PORT (8080) with a fresh
# API key printed once, and show how to reach it. NO_AUTH=1 serves without keys (loopback only).
set -eu
port=${PORT:-8080}
data=${AIRLOCK_DATA:-./airlock-data}
args=(serve --host 127.0.0.1 --port "$port" --data "$data")
[ -n "${MODEL:-}" ] && args+=(--model "$MODEL")
url="http://127.0.0.1:$port"
if [ -n "${NO_AUTH:-}" ]; then
  args+=(--no-auth)
  auth=""
  echo "airlock: serving WITHOUT API keys (NO_AUTH=1; loopback only)"
else
  key=$(./airlock keys add "run-$(date +%Y%m%d-%H%M%S)" --data "$data")
  auth=" -H \"Authorization: Bearer $key\""
  cat <<MSG
airlock: a new API key was created for this run. It is shown only now; keep it:

    $key

MSG
fi
cat <<MSG
Chat page:  $url/   (paste the key under Settings)
Status:     $url/status
API:        curl $url/v1/chat/completions$auth \\
              -H 'Content-Type: application/json' \\
              -d '{"messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":64}'

The built-in model is stories260K: it continues children's stories and does not follow
instructions. See README.md for carrying a real instruct model across.
Stop with Ctrl-C.
MSG
exec ./airlock "${args[@]}"
