#!/usr/bin/env node
// From a checkout, run the TypeScript sources directly (Node >= 22.18 strips
// types); an installed package carries only the compiled dist/.
import { existsSync } from 'node:fs';

const source = new URL('../src/cli.ts', import.meta.url);
const fromSource = existsSync(source);
const [major, minor] = process.versions.node.split('.').map(Number);
// Running the sources needs type stripping (Node 22.18+); the compiled package needs 22.12.
const needed = fromSource ? [22, 18] : [22, 12];
if (major < needed[0] || (major === needed[0] && minor < needed[1])) {
  const hint = fromSource ? '; in a checkout, `. scripts/toolchain.sh` installs a recent Node into .tools/ and puts it on PATH' : '';
  process.stderr.write(`berth: needs Node.js >= ${needed.join('.')}, this is ${process.versions.node}${hint}\n`);
  process.exit(1);
}
const entry = fromSource ? source : new URL('../dist/cli.js', import.meta.url);
const { main } = await import(entry.href);
process.exitCode = await main(process.argv.slice(2));
