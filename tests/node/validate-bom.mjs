// validate-bom.mjs -- check that each FILE is a valid CycloneDX 1.6 JSON document, using the
// strict JSON-schema validator of @cyclonedx/cyclonedx-library (ajv + formats, pinned in
// package-lock.json). Used by tests/e2e/bom_cyclonedx.sh. Exits 0 when every file validates,
// 1 when any does not (printing the schema errors), 2 on usage or a missing dependency.
// Runs offline: the schemas ship inside the library.
import { readFile } from 'node:fs/promises';
import { Spec, Validation } from '@cyclonedx/cyclonedx-library';

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error('usage: node validate-bom.mjs BOM.json...');
  process.exit(2);
}

const validator = new Validation.JsonStrictValidator(Spec.Version.v1dot6);
let bad = 0;
for (const f of files) {
  let text;
  try {
    text = await readFile(f, 'utf8');
  } catch (err) {
    console.error(`${f}: cannot read: ${err.message}`);
    bad++;
    continue;
  }
  let doc;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    console.error(`${f}: not JSON: ${err.message}`);
    bad++;
    continue;
  }
  // The schema alone does not pin the version this test promises, so check it explicitly.
  if (doc.bomFormat !== 'CycloneDX' || doc.specVersion !== '1.6') {
    console.error(`${f}: bomFormat/specVersion is ${doc.bomFormat}/${doc.specVersion}, want CycloneDX/1.6`);
    bad++;
    continue;
  }
  let errors;
  try {
    errors = await validator.validate(text);
  } catch (err) {
    if (err instanceof Validation.MissingOptionalDependencyError) {
      console.error(`validator dependency missing: ${err.message}`);
      process.exit(2);
    }
    throw err;
  }
  if (errors === null) {
    console.log(`${f}: valid CycloneDX 1.6`);
  } else {
    console.error(`${f}: NOT valid CycloneDX 1.6:`);
    console.error(JSON.stringify(errors, null, 2));
    bad++;
  }
}
process.exit(bad === 0 ? 0 : 1);
