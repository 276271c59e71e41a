// Prints, one per line and relative to the repository, the folder of an
// installed npm package and of every package it needs at run time, found as
// Node finds them (the nearest node_modules up from the one that asks).
// Usage: node scripts/cluster/package-closure.ts <package name>
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '../..');
const found = new Set<string>();

function locate(name: string, from: string): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'node_modules', name);
    if (existsSync(path.join(candidate, 'package.json'))) return candidate;
    if (dir === root || dir === path.dirname(dir)) throw new Error(`package ${name} (needed from ${path.relative(root, from) || '.'}) is not installed`);
  }
}

function visit(dir: string): void {
  if (found.has(dir)) return;
  found.add(dir);
  const manifest = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { dependencies?: Record<string, string>; optionalDependencies?: Record<string, string> };
  for (const name of Object.keys(manifest.dependencies ?? {})) visit(locate(name, dir));
  for (const name of Object.keys(manifest.optionalDependencies ?? {})) {
    try {
      visit(locate(name, dir));
    } catch {
      // An optional dependency may be absent on this platform, as npm allows.
    }
  }
}

const wanted = process.argv[2];
if (wanted === undefined) {
  console.error('usage: node scripts/cluster/package-closure.ts <package name>');
  process.exit(2);
}
visit(locate(wanted, root));
for (const dir of [...found].sort()) console.log(path.relative(root, dir));
