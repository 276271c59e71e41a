import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { findCycle, importGraph, mermaid, reduce } from '../../scripts/import-graph.ts';

const root = path.join(import.meta.dirname, '..', '..');
const graph = importGraph(path.join(root, 'src'));

describe('architecture: the rooms of src/', () => {
  it('no module imports itself back through others', () => {
    assert.equal(findCycle(graph.files)?.join(' → '), undefined);
  });

  it('no folder imports a folder that imports it back (every arrow runs down)', () => {
    assert.equal(findCycle(graph.folders)?.join(' → '), undefined);
  });

  it('the proxy’s upstream and downstream rooms never import each other', () => {
    assert.equal(graph.folders.get('proxy/upstream')?.has('proxy/downstream'), false);
    assert.equal(graph.folders.get('proxy/downstream')?.has('proxy/upstream'), false);
  });

  it('the MCP protocol rooms do not reach into the composition root or the controller', () => {
    for (const room of ['http', 'proxy/mux', 'proxy/upstream', 'proxy/downstream', 'proxy/routes', 'auth', 'credentials']) {
      for (const above of ['cli', 'reconcile']) assert.equal(graph.folders.get(room)?.has(above) ?? false, false, `${room} imports ${above}`);
    }
  });

  it('no folder holds more than 2,500 lines', () => {
    for (const folder of graph.folders.keys()) {
      if (folder.endsWith('.ts')) continue;
      const dir = path.join(root, 'src', folder);
      const lines = readdirSync(dir).filter((f) => f.endsWith('.ts')).reduce((n, f) => n + readFileSync(path.join(dir, f), 'utf8').split('\n').length, 0);
      assert.ok(lines <= 2_500, `src/${folder} has ${lines} lines: split it by job`);
    }
  });

  it('docs/architecture.md draws the folder graph as the code has it (npm run gen redraws it)', () => {
    const doc = readFileSync(path.join(root, 'docs', 'architecture.md'), 'utf8');
    const drawn = /```mermaid\n([\s\S]*?)\n```/.exec(doc)?.[1];
    assert.equal(drawn, mermaid(reduce(graph.folders)));
  });
});
