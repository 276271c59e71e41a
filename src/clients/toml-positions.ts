import type { KeyPath, Position } from '../config/issues.ts';
import type { Positions } from '../config/source.ts';

/**
 * Where the keys of a TOML file sit. smol-toml gives no positions, and the
 * configs read here (Codex's `[mcp_servers.*]`) are tables of `key = value`
 * lines, so one pass over the lines finds table headers, keys and the keys of
 * one-line inline tables. A path not found falls back to its closest found
 * prefix, as the YAML index does.
 */
export function tomlPositions(text: string): Positions {
  const found = new Map<string, { key: Position; value: Position }>();
  let table: string[] = [];
  text.split('\n').forEach((line, i) => {
    const header = /^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$/.exec(line);
    if (header !== null) {
      table = splitKey(header[1] ?? '');
      const at = { line: i + 1, col: line.indexOf('[') + 1 };
      found.set(JSON.stringify(table), { key: at, value: at });
      return;
    }
    const entry = /^(\s*)((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*=\s*/.exec(line);
    if (entry === null) return;
    const key = [...table, ...splitKey(entry[2] ?? '')];
    const valueCol = entry[0].length + 1;
    found.set(JSON.stringify(key), { key: { line: i + 1, col: (entry[1] ?? '').length + 1 }, value: { line: i + 1, col: valueCol } });
    // An inline table on the same line: `env = { A = "x", "B-C" = "y" }`.
    const rest = line.slice(entry[0].length);
    if (!rest.startsWith('{')) return;
    for (const inner of rest.matchAll(/[{,]\s*([A-Za-z0-9_-]+|"[^"]*"|'[^']*')\s*=\s*/g)) {
      const start = entry[0].length + inner.index;
      found.set(JSON.stringify([...key, unquote(inner[1] ?? '')]), {
        key: { line: i + 1, col: start + inner[0].indexOf(inner[1] ?? '') + 1 },
        value: { line: i + 1, col: start + inner[0].length + 1 },
      });
    }
  });
  const find = (path: KeyPath, onKey: boolean): Position => {
    for (let n = path.length; n > 0; n--) {
      const at = found.get(JSON.stringify(path.slice(0, n)));
      if (at !== undefined) return onKey && n === path.length ? at.key : at.value;
    }
    return { line: 1, col: 1 };
  };
  return { value: (path) => find(path, false), key: (path) => find(path, true) };
}

/** `mcp_servers."my.server".env` → its segments. */
function splitKey(key: string): string[] {
  return [...key.matchAll(/"([^"]*)"|'([^']*)'|([^.\s]+)/g)].map((m) => m[1] ?? m[2] ?? m[3] ?? '');
}

function unquote(key: string): string {
  return /^["'].*["']$/.test(key) ? key.slice(1, -1) : key;
}
