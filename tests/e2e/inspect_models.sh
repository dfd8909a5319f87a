#!/usr/bin/env bash
# inspect_models.sh -- `airlock inspect` on every GGUF in $SHARED/models (sanitizer build):
# metadata printed, --json -v consistent with the summary; then hostile truncations and
# patched headers of real files: each must exit 4 with a message naming the byte or field,
# never crash, never trip ASan/UBSan.
set -euo pipefail
: "${AIRLOCK_ASAN:?}" "${SHARED:?}" "${TMP:?}"
A=$AIRLOCK_ASAN
fail=0
bad() { echo "FAIL: $*"; fail=1; }

shopt -s nullglob
models=("$SHARED"/models/*.gguf)
[ ${#models[@]} -gt 0 ] || { echo "no GGUF models under $SHARED/models"; exit 1; }

# --- every real model inspects cleanly -----------------------------------------------------
for m in "${models[@]}"; do
  name=$(basename "$m")
  if ! "$A" inspect "$m" > "$TMP/out.txt" 2> "$TMP/err.txt"; then
    bad "$name: inspect exited non-zero: $(cat "$TMP/err.txt")"; continue
  fi
  for want in "safety: weights (gguf" "format: GGUF v" "architecture: " "parameters: " \
              "tensor types: " "context length: " "vocab size: " "chat template: "; do
    grep -qF "$want" "$TMP/out.txt" || bad "$name: output lacks '$want'"
  done
  "$A" inspect --json -v "$m" > "$TMP/out.json" 2> "$TMP/err.txt" || { bad "$name: --json -v failed"; continue; }
  node -e '
    const j = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const m = j.model;
    const ok = j.safety.class === "weights" && m && m.format === "gguf" &&
      typeof m.architecture === "string" && m.parameters > 0 && m.vocab_size > 0 &&
      Array.isArray(j.tensors) && j.tensors.length === m.tensor_count &&
      j.tensors.reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0) === m.parameters &&
      m.quantization.reduce((s, q) => s + q.tensors, 0) === m.tensor_count &&
      j.metadata.some(kv => kv.key === "general.architecture");
    if (!ok) { console.error("inconsistent JSON"); process.exit(1); }
  ' "$TMP/out.json" || bad "$name: --json -v output inconsistent"
done
"$A" inspect -v "$SHARED/models/stories260K-q4_0.gguf" > "$TMP/outv.txt" || bad "-v failed"
grep -q "^tensors (48):" "$TMP/outv.txt" || bad "-v lists no tensors"
grep -q "tokenizer.ggml.tokens: array = \[string x 512\]" "$TMP/outv.txt" || bad "-v arrays"
grep -q "vocab size: 32000" <("$A" inspect "$SHARED/models/llama2-tiny-random-f16.gguf") ||
  bad "llama2-tiny: vocab size is not 32000"

# --- hostile truncations ----------------------------------------------------------------------
expect_input_error() { # file, label: exit 4, a message, no sanitizer report
  local rc=0
  "$A" inspect "$1" > /dev/null 2> "$TMP/err.txt" || rc=$?
  if grep -qE "AddressSanitizer|runtime error|LeakSanitizer" "$TMP/err.txt"; then
    bad "$2: sanitizer report"; head -20 "$TMP/err.txt"
  elif [ "$rc" -ne 4 ]; then
    bad "$2: exit $rc, want 4 ($(head -c 300 "$TMP/err.txt"))"
  elif ! grep -qE "byte|bytes|truncated|past the end|limit|key|tensor" "$TMP/err.txt"; then
    bad "$2: message names no byte or field: $(cat "$TMP/err.txt")"
  fi
}
# (the last tensor may be followed by alignment padding, so cut at least 64 bytes)
for m in "$SHARED/models/stories260K-q8_0.gguf" "$SHARED/models/qwen2-k-small-q4_k_m.gguf"; do
  [ -f "$m" ] || continue
  size=$(stat -c %s "$m")
  for n in 3 8 20 24 40 1000 16384 $((size / 2)) $((size - 64)); do
    [ "$n" -lt "$size" ] || continue
    head -c "$n" "$m" > "$TMP/t.gguf"
    expect_input_error "$TMP/t.gguf" "$(basename "$m") truncated to $n bytes"
  done
done

# --- patched headers: huge counts and lengths -------------------------------------------------
m="$SHARED/models/stories260K-q4_0.gguf"
patch() { # offset, 8 bytes as \x escapes, label
  cp "$m" "$TMP/p.gguf"
  printf "$2" | dd of="$TMP/p.gguf" bs=1 seek="$1" conv=notrunc status=none
  expect_input_error "$TMP/p.gguf" "$3"
}
patch 4  '\x07\x00\x00\x00' "version 7"
patch 8  '\xff\xff\xff\xff\xff\xff\xff\x7f' "n_tensors 2^63-1"
patch 8  '\x00\x00\x10\x00\x00\x00\x00\x00' "n_tensors 2^20"
patch 16 '\xff\xff\xff\xff\xff\xff\xff\xff' "n_kv 2^64-1"
patch 16 '\x00\x01\x00\x00\x00\x00\x00\x00' "n_kv 256"
patch 24 '\xff\xff\xff\xff\xff\xff\xff\x0f' "first key length huge"
patch 24 '\x00\x00\x00\x01\x00\x00\x00\x00' "first key length 16 MiB"
# the first key is tokenizer.ggml.tokens (array of strings): element type and count
koff=$((24 + 8 + $(head -c 32 "$m" | tail -c 8 | od -An -tu8 | tr -d ' ')))
patch $((koff + 4)) '\x0d\x00\x00\x00' "array element type 13"
patch $((koff + 8)) '\xff\xff\xff\xff\xff\xff\xff\x1f' "array count huge"
patch $((koff)) '\x20\x00\x00\x00' "value type 32"

# --- hostile safetensors ----------------------------------------------------------------------
st() { # header, data bytes, label
  python_free_len=$(printf '%s' "$1" | wc -c)
  { printf "$(printf '\\x%02x\\x%02x\\x%02x\\x%02x\\x00\\x00\\x00\\x00' $((python_free_len & 255)) \
      $(((python_free_len >> 8) & 255)) $(((python_free_len >> 16) & 255)) $(((python_free_len >> 24) & 255)))";
    printf '%s' "$1"; head -c "$2" /dev/zero; } > "$TMP/s.safetensors"
}
st '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}' 8
"$A" inspect "$TMP/s.safetensors" > "$TMP/out.txt" || bad "good safetensors rejected"
grep -q "safety: weights (safetensors" "$TMP/out.txt" || bad "safetensors verdict"
grep -q "dtypes: F32" "$TMP/out.txt" || bad "safetensors dtypes"
st '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}' 4
expect_input_error "$TMP/s.safetensors" "safetensors data truncated"
st '{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}' 8
expect_input_error "$TMP/s.safetensors" "safetensors shape overflow"
st '{"a":{"dtype":"Q9","shape":[2],"data_offsets":[0,8]}}' 8
expect_input_error "$TMP/s.safetensors" "safetensors bad dtype"
st '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}' 12
expect_input_error "$TMP/s.safetensors" "safetensors overlap"
printf '\xff\xff\xff\xff\xff\xff\x00\x00{}' > "$TMP/s.safetensors"
expect_input_error "$TMP/s.safetensors" "safetensors header length beyond file"
printf '\x05\x00' > "$TMP/s.safetensors"
expect_input_error "$TMP/s.safetensors" "safetensors 2-byte file"

[ "$fail" -eq 0 ] && echo "inspect_models: all checks passed"
exit "$fail"
