// Generates src/config/types.gen.ts from the schema, the contract; a test
// fails when the committed file drifts from it. Run: npm run gen
import { readFileSync, writeFileSync } from 'node:fs';
import { compile } from 'json-schema-to-typescript';

export async function renderConfigTypes(): Promise<string> {
  const schema = JSON.parse(readFileSync(new URL('../schemas/berth.schema.json', import.meta.url), 'utf8'));
  return compile(schema, 'BerthConfig', {
    bannerComment: '/* Generated from schemas/berth.schema.json by scripts/gen-types.ts. Do not edit. */',
    additionalProperties: false,
    unreachableDefinitions: false,
    strictIndexSignatures: true,
    format: true,
    ignoreMinAndMaxItems: true,
    style: { singleQuote: true, printWidth: 120 },
  });
}

if (import.meta.main) {
  writeFileSync(new URL('../src/config/types.gen.ts', import.meta.url), await renderConfigTypes());
}
