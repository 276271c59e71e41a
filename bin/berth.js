#!/usr/bin/env node
// From a checkout, run the TypeScript sources directly (Node >= 22.18 strips
// types); an installed package carries only the compiled dist/.
import { existsSync } from 'node:fs';

const source = new URL('../src/cli.ts', import.meta.url);
const entry = existsSync(source) ? source : new URL('../dist/cli.js', import.meta.url);
const { main } = await import(entry.href);
process.exitCode = await main(process.argv.slice(2));
