// HnswStore: recall@10 against exact search, writes reflected, version filter, persistence.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { rng } from './helpers/random.mjs';

const require = createRequire(import.meta.url);
const { HnswStore, VectorStore } = require('../dist/store/index.js');

const root = mkdtempSync(join(tmpdir(), 'store-hnsw-'));
after(() => rmSync(root, { recursive: true, force: true }));


// Clustered data (like real embeddings, unlike uniform noise) so recall reflects ordinary use.
function dataset(n, dim, seed) {
  const rand = rng(seed);
  const centers = Array.from({ length: 50 }, () => Array.from({ length: dim }, () => rand() * 2 - 1));
  return Array.from({ length: n }, (_, i) => centers[i % 50].map((c) => c + (rand() * 2 - 1) * 0.6));
}

function build(vectors, options = {}) {
  const ann = new HnswStore({ dim: vectors[0].length, capacity: 64, ...options });
  const exact = new VectorStore({ dim: vectors[0].length });
  vectors.forEach((v, i) => {
    ann.add(`d${i}`, v, i % 3);
    exact.add(`d${i}`, v, i % 3);
  });
  return { ann, exact };
}

function recallAt10(ann, exact, queries, options) {
  let found = 0;
  let total = 0;
  for (const q of queries) {
    const truth = new Set(exact.searchSync(q, 10, options).map((h) => h.id));
    total += truth.size;
    for (const h of ann.searchSync(q, 10, options)) if (truth.has(h.id)) found++;
  }
  return found / total;
}

describe('HnswStore', () => {
  const vectors = dataset(3000, 48, 1);
  const queries = dataset(200, 48, 2);
  const { ann, exact } = build(vectors);

  it('recall@10 against exact search is at least 0.95 (efSearch 64)', (t) => {
    const recall = recallAt10(ann, exact, queries);
    t.diagnostic(`recall@10 = ${recall.toFixed(4)}`);
    assert.ok(recall >= 0.95, `recall@10 ${recall}`);
    // reported scores are exact cosines, ordered like the exact store orders them
    const q = queries[0];
    const exactById = new Map(exact.searchSync(q, 3000).map((h) => [h.id, h]));
    for (const h of ann.searchSync(q, 10)) assert.deepEqual(h, exactById.get(h.id));
  });

  it('honours version filters', (t) => {
    const recall = recallAt10(ann, exact, queries.slice(0, 50), { minVersion: 2 });
    t.diagnostic(`filtered recall@10 = ${recall.toFixed(4)}`);
    assert.ok(recall >= 0.9, `filtered recall@10 ${recall}`);
    for (const h of ann.searchSync(queries[1], 10, { maxVersion: 0 })) assert.equal(h.version, 0);
  });

  it('reflects updates and deletes, reusing graph labels', () => {
    const { ann: small } = build(dataset(200, 16, 3));
    const target = Array.from({ length: 16 }, (_, i) => (i === 3 ? 1 : 0));
    small.update('d5', target, 9);
    assert.deepEqual(small.searchSync(target, 1), [{ id: 'd5', score: 1, version: 9 }]);
    assert.equal(small.delete('d5'), true);
    assert.notEqual(small.searchSync(target, 1)[0].id, 'd5');
    small.add('new', target, 10);
    assert.deepEqual(small.searchSync(target, 1), [{ id: 'new', score: 1, version: 10 }]);
    assert.equal(small.size, 200);
    assert.deepEqual(small.staleIds(1).length, 67);
    assert.throws(() => small.searchSync(target, 0), { message: 'Expected positive integer for k but received 0 of type number' });
  });

  it('round-trips through save/load and detects a corrupt graph file', async () => {
    const dir = join(root, 'ann');
    await ann.save(dir);
    const loaded = await HnswStore.load(dir);
    assert.equal(loaded.size, ann.size);
    for (const q of queries.slice(0, 20)) assert.deepEqual(loaded.searchSync(q, 10), ann.searchSync(q, 10));
    loaded.add('after-load', queries[0], 4);
    assert.equal(loaded.searchSync(queries[0], 1)[0].id, 'after-load');
    const graph = join(dir, readdirSync(dir).find((f) => f.startsWith('graph.')));
    const bytes = readFileSync(graph);
    bytes[bytes.length >> 1] ^= 1;
    writeFileSync(graph, bytes);
    await assert.rejects(HnswStore.load(dir), { code: 'ERR_STORE', message: `Store file ${graph} fails its SHA-256 checksum (corrupt)` });
  });

  it('writes while a save is running are refused with ERR_BUSY, and the save holds the store as it was', async () => {
    const vectors = dataset(100, 16, 21);
    const { ann } = build(vectors);
    const dir = join(root, 'busy');
    const saving = ann.save(dir);
    assert.throws(() => ann.add('late', vectors[0], 1), { code: 'ERR_BUSY' });
    assert.throws(() => ann.delete('d0'), { code: 'ERR_BUSY' });
    await saving;
    ann.add('late', vectors[0], 1);
    const loaded = await HnswStore.load(dir);
    assert.equal(loaded.size, 100);
    assert.equal(loaded.get('late'), undefined);
  });
});
