#!/usr/bin/env bash
# bom_cyclonedx.sh -- every BOM the suite writes must be valid CycloneDX 1.6 by the strict JSON
# validator of npm @cyclonedx/cyclonedx-library (tests/node, pinned by package-lock.json).
# BOMs checked:
#   1. those tests/unit/test_bom.c writes (it is run here in a scratch dir, and whatever
#      `make unit` left in build/results/boms/ is checked too);
#   2. BOM.json of real `airlock pack` runs: a directory with a GGUF model, a safetensors
#      file, a pickle, a zip-pickle, a .py file, JSON, an empty file and a unicode name,
#      packed as a directory and as a .tar, with and without licence/source;
#   3. a deliberately broken BOM, which the validator must reject (so a silent validator
#      cannot pass the test).
# It also checks the pack BOM's content: hashes equal sha256sum's, sizes, safety flags,
# model metadata and modelCard.
set -euo pipefail
: "${AIRLOCK:?}" "${ROOT:?}" "${TMP:?}" "${SHARED:?}"
fail=0
bad() { echo "FAIL: $*"; fail=1; }
NODE_DIR=$ROOT/tests/node
VALIDATE="node $NODE_DIR/validate-bom.mjs"

# --- validator dependencies (exact versions from package-lock.json) ---------------------------
if ! (cd "$NODE_DIR" && npm ci --no-audit --no-fund --prefer-offline --loglevel=error > "$TMP/npm.log" 2>&1); then
  if [ -d "$NODE_DIR/node_modules/@cyclonedx/cyclonedx-library" ]; then
    echo "warning: npm ci failed, using the node_modules already present:"; tail -5 "$TMP/npm.log"
  else
    echo "npm ci failed and no node_modules present:"; cat "$TMP/npm.log"; exit 1
  fi
fi

# --- 3. the validator must catch a broken BOM ---------------------------------------------------
cat > "$TMP/broken.json" <<'JSON'
{"bomFormat": "CycloneDX", "specVersion": "1.6", "version": 1,
 "components": [{"type": "model", "name": "x", "hashes": [{"alg": "SHA-256", "content": "xyz"}]}]}
JSON
if $VALIDATE "$TMP/broken.json" > "$TMP/broken.log" 2>&1; then
  bad "validator accepted a broken BOM"
fi

# --- 1. unit-test BOMs --------------------------------------------------------------------------
boms=()
UNIT_BIN=$ROOT/build/asan/tests/test_bom
if [ ! -x "$UNIT_BIN" ]; then
  make -C "$ROOT" --no-print-directory build/asan/tests/test_bom > "$TMP/make.log" 2>&1 ||
    { bad "cannot build test_bom"; tail -20 "$TMP/make.log"; }
fi
if [ -x "$UNIT_BIN" ]; then
  mkdir -p "$TMP/unit"
  (cd "$TMP/unit" && SHARED=$SHARED "$UNIT_BIN" > "$TMP/unit.log" 2>&1) ||
    { bad "test_bom failed"; tail -20 "$TMP/unit.log"; }
  for f in "$TMP"/unit/build/results/boms/*.json; do [ -f "$f" ] && boms+=("$f"); done
fi
for f in "$ROOT"/build/results/boms/*.json; do [ -f "$f" ] && boms+=("$f"); done

# --- 2. real packs ------------------------------------------------------------------------------
if "$AIRLOCK" pack --help > /dev/null 2>&1 && "$AIRLOCK" keygen -W -p "$TMP/k.pub" -s "$TMP/k.key" > /dev/null; then
  src=$TMP/src
  mkdir -p "$src/model" "$src/code" "$src/ünïcödé"
  cp "$SHARED/models/stories260K-q4_0.gguf" "$src/model/"
  cp "$ROOT/fuzz/corpus/safetensors/good.safetensors" "$src/model/model.safetensors"
  cp "$ROOT/tests/vectors/safety/pickle-p2.pt" "$src/model/pytorch_model.bin"
  cp "$ROOT/tests/vectors/safety/torch-zip.pt" "$src/model/legacy.pt"
  cp "$ROOT/tests/vectors/safety/modeling_x.py" "$src/code/"
  cp "$ROOT/tests/vectors/safety/config.json" "$src/model/"
  : > "$src/ünïcödé/empty.txt"
  packs=()
  if "$AIRLOCK" pack "$src" -o "$TMP/b1" --name stories --version 1.0 --key "$TMP/k.key" \
       --license Apache-2.0 --source https://huggingface.co/karpathy/tinyllamas \
       --creator "QA team <qa@example.org>" > "$TMP/pack.log" 2>&1; then
    packs+=("$TMP/b1/BOM.json")
  else
    bad "pack (directory) failed"; cat "$TMP/pack.log"
  fi
  if "$AIRLOCK" pack "$src" -o "$TMP/b2.tar" --name stories --version 1.0-rc1 --key "$TMP/k.key" \
       --license "Llama 2 Community License" --source "USB drive 7" > "$TMP/pack2.log" 2>&1; then
    mkdir -p "$TMP/b2x" && tar -xf "$TMP/b2.tar" -C "$TMP/b2x"
    f=$(find "$TMP/b2x" -name BOM.json | head -1)
    if [ -n "$f" ]; then packs+=("$f"); else bad "no BOM.json in the tar"; fi
  else
    bad "pack (tar) failed"; cat "$TMP/pack2.log"
  fi
  mkdir -p "$TMP/data-only" && cp "$ROOT/tests/vectors/safety/model-card.md" "$TMP/data-only/"
  if "$AIRLOCK" pack "$TMP/data-only" -o "$TMP/b3" --name docs --version 2 --key "$TMP/k.key" > "$TMP/pack3.log" 2>&1; then
    packs+=("$TMP/b3/BOM.json")
  else
    bad "pack (data only) failed"; cat "$TMP/pack3.log"
  fi
  boms+=("${packs[@]}")

  # content of the directory pack's BOM against the files themselves
  if [ -f "$TMP/b1/BOM.json" ]; then
    (cd "$TMP/b1" && find payload -type f -print0 | sort -z | xargs -0 sha256sum) > "$TMP/sums"
    node - "$TMP/b1/BOM.json" "$TMP/sums" <<'JS' || bad "pack BOM content"
const fs = require("fs");
const bom = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const sums = new Map(fs.readFileSync(process.argv[3], "utf8").trim().split("\n")
  .map(l => [l.slice(66), l.slice(0, 64)]));
const errs = [];
const prop = (c, n) => ((c.properties || []).find(p => p.name === n) || {}).value;
const comps = bom.components || [];
if (comps.length !== sums.size) errs.push(`components ${comps.length}, files ${sums.size}`);
for (const c of comps) {
  const h = (c.hashes || []).find(x => x.alg === "SHA-256");
  if (!h || sums.get(c.name) !== h.content) errs.push(`${c.name}: hash differs from sha256sum`);
  if (String(fs.statSync(process.argv[2].replace(/BOM\.json$/, "") + c.name).size) !== prop(c, "airlock:size"))
    errs.push(`${c.name}: airlock:size wrong`);
}
const by = n => comps.find(c => c.name === n) || {};
const want = [["payload/model/stories260K-q4_0.gguf", "weights"], ["payload/model/model.safetensors", "weights"],
  ["payload/model/pytorch_model.bin", "pickle"], ["payload/model/legacy.pt", "pickle"],
  ["payload/code/modeling_x.py", "code"], ["payload/model/config.json", "data"],
  ["payload/ünïcödé/empty.txt", "data"]];
for (const [n, cls] of want) if (prop(by(n), "airlock:safety") !== cls) errs.push(`${n}: safety ${prop(by(n), "airlock:safety")}, want ${cls}`);
if (prop(by("payload/model/legacy.pt"), "airlock:pickle.imports") !== "collections.OrderedDict")
  errs.push("legacy.pt: airlock:pickle.imports not recorded");
const g = by("payload/model/stories260K-q4_0.gguf");
if (g.type !== "machine-learning-model") errs.push("gguf is not a machine-learning-model component");
if (prop(g, "airlock:gguf.architecture") !== "llama") errs.push("gguf architecture");
if (prop(g, "airlock:vocab_size") !== "512") errs.push("gguf vocab size");
if (!/Q4_0:\d+/.test(prop(g, "airlock:quantization") || "")) errs.push("gguf quantization");
if (!g.modelCard || g.modelCard.modelParameters.architectureFamily !== "llama") errs.push("gguf modelCard");
if (prop(by("payload/model/model.safetensors"), "airlock:safetensors.dtypes") !== "F16,F32") errs.push("safetensors dtypes");
const m = bom.metadata || {};
if (m.component.name !== "stories" || m.component.version !== "1.0") errs.push("bundle name/version");
if (!m.component.externalReferences || m.component.externalReferences[0].type !== "distribution") errs.push("source reference");
if (!m.authors || m.authors[0].name !== "QA team <qa@example.org>") errs.push("creator");
if (!m.tools.components.some(t => t.name === "airlock")) errs.push("tool");
if (errs.length) { console.error(errs.join("\n")); process.exit(1); }
JS
  fi
else
  echo "note: airlock pack/keygen not usable yet; validating unit-test BOMs only"
fi

# --- validate everything ------------------------------------------------------------------------
[ ${#boms[@]} -gt 0 ] || { bad "no BOMs to validate"; exit 1; }
echo "validating ${#boms[@]} BOMs"
$VALIDATE "${boms[@]}" || bad "a BOM is not valid CycloneDX 1.6"

[ "$fail" -eq 0 ] && echo "bom_cyclonedx: all checks passed"
exit "$fail"
