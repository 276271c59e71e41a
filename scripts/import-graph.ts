// The import graph of src/, by file and by folder: what the architecture test
// checks (no cycle, no arrow back up) and what docs/architecture.md draws.
// `node scripts/import-graph.ts` redraws the picture in docs/architecture.md (npm run gen).
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const IMPORT = /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s*['"](\.{1,2}\/[^'"]+)['"]/g;

export interface ImportGraph {
  /** file (relative to src/) → the files it imports */
  readonly files: ReadonlyMap<string, ReadonlySet<string>>;
  /** folder (relative to src/) → the folders it imports; a file at the top of src/ is a node of its own */
  readonly folders: ReadonlyMap<string, ReadonlySet<string>>;
}

export function importGraph(srcDir: string): ImportGraph {
  const files = new Map<string, Set<string>>();
  const folders = new Map<string, Set<string>>();
  for (const file of listTs(srcDir)) {
    const rel = path.relative(srcDir, file);
    const deps = new Set<string>();
    for (const m of readFileSync(file, 'utf8').matchAll(IMPORT)) deps.add(path.relative(srcDir, path.resolve(path.dirname(file), m[1]!)));
    files.set(rel, deps);
    const from = nodeOf(rel);
    const out = folders.get(from) ?? new Set<string>();
    folders.set(from, out);
    for (const dep of deps) if (nodeOf(dep) !== from) out.add(nodeOf(dep));
  }
  return { files, folders };
}

// src/cli.ts (the entry) and the shared leaves (errors.ts, identity.ts) sit at
// the top of src/ but on different floors, so each is its own node.
function nodeOf(file: string): string {
  const dir = path.dirname(file);
  return dir === '.' ? file : dir;
}

/** The graph without the arrows that a longer path already implies: the picture's arrows. */
export function reduce(graph: ReadonlyMap<string, ReadonlySet<string>>): Map<string, Set<string>> {
  const reach = (from: string, skip: string): boolean => {
    const seen = new Set<string>();
    const todo = [...(graph.get(from) ?? [])].filter((n) => n !== skip);
    while (todo.length > 0) {
      const n = todo.pop()!;
      if (n === skip) return true;
      if (seen.has(n)) continue;
      seen.add(n);
      todo.push(...(graph.get(n) ?? []));
    }
    return false;
  };
  const out = new Map<string, Set<string>>();
  for (const [from, tos] of graph) out.set(from, new Set([...tos].filter((to) => !reach(from, to))));
  return out;
}

/** One cycle of the graph, as the path that closes it, or undefined when there is none. */
export function findCycle(graph: ReadonlyMap<string, ReadonlySet<string>>): string[] | undefined {
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (node: string): string[] | undefined => {
    if (state.get(node) === 'done') return undefined;
    if (state.get(node) === 'open') return [...stack.slice(stack.indexOf(node)), node];
    state.set(node, 'open');
    stack.push(node);
    for (const next of graph.get(node) ?? []) {
      const cycle = visit(next);
      if (cycle !== undefined) return cycle;
    }
    stack.pop();
    state.set(node, 'done');
    return undefined;
  };
  for (const node of [...graph.keys()].sort()) {
    const cycle = visit(node);
    if (cycle !== undefined) return cycle;
  }
  return undefined;
}

/** A folder graph as a Mermaid flowchart. */
export function mermaid(folders: ReadonlyMap<string, ReadonlySet<string>>): string {
  const id = (f: string): string => f.replaceAll(/[/.-]/g, '_');
  const lines = ['flowchart TD'];
  for (const [from, tos] of [...folders].sort(([a], [b]) => a.localeCompare(b))) {
    for (const to of [...tos].sort()) lines.push(`  ${id(from)}[${from}] --> ${id(to)}[${to}]`);
  }
  return lines.join('\n');
}

function listTs(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => path.join(e.parentPath, e.name))
    .sort();
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
  const graph = importGraph(path.join(root, 'src'));
  const cycle = findCycle(graph.folders);
  if (cycle !== undefined) {
    process.stderr.write(`import-graph: folder cycle ${cycle.join(' → ')}\n`);
    process.exit(1);
  }
  const doc = path.join(root, 'docs', 'architecture.md');
  const text = readFileSync(doc, 'utf8').replace(/```mermaid\n[\s\S]*?\n```/, () => '```mermaid\n' + mermaid(reduce(graph.folders)) + '\n```');
  writeFileSync(doc, text);
}
