#!/usr/bin/env bash
# make run: serve the default model on 127.0.0.1:8080 once `airlock serve` exists; until then
# run the built-in engine on the small trained model from ../shared so the build is exercised.
set -eu
if ./airlock help serve >/dev/null 2>&1; then
  exec ./airlock serve --host 127.0.0.1 --port "${PORT:-8080}" --data "${AIRLOCK_DATA:-./airlock-data}"
fi
model=${MODEL:-../shared/models/stories260K-f32.gguf}
echo "airlock serve is not built yet (issue 5); running the engine on $model instead:" >&2
exec ./airlock run "$model" -p "Once upon a time" -n 64 --temp 0
