// VectorStore: exact top-k against brute force on both search paths, writes, versions, errors.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';
import { rng } from './helpers/random.mjs';

const require = createRequire(import.meta.url);
const { VectorStore, normalize, loadVectorKernels } = require('../dist/store/index.js');

const native = loadVectorKernels();
const KERNELS = native ? ['native', 'js'] : ['js'];


function randomVector(rand, dim) {
  return Array.from({ length: dim }, () => rand() * 2 - 1);
}

// Brute force straight from the definition: every record, double-precision dot of the stored
// unit vector with the unit query, sorted by score then id.
function bruteForce(store, query, k, { minVersion = 0, maxVersion = Infinity } = {}) {
  const q = normalize(query, store.dim);
  const hits = [];
  for (const id of store.ids()) {
    const rec = store.get(id);
    if (rec.version < minVersion || rec.version > maxVersion) continue;
    let score = 0;
    for (let i = 0; i < store.dim; i++) score += rec.vector[i] * q[i];
    hits.push({ id, score, version: rec.version });
  }
  hits.sort((a, b) => b.score - a.score || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return hits.slice(0, k);
}

// Random store with exact duplicates (score ties) and ids whose order differs from insertion order.
function fillStore(store, n, seed) {
  const rand = rng(seed);
  const vectors = [];
  for (let i = 0; i < n; i++) {
    const dup = i % 7 === 3 && i > 0;
    const v = dup ? vectors[i - 3] : randomVector(rand, store.dim);
    vectors.push(v);
    store.add(`doc-${(n - i) * 7919 % 100003}`, v, i % 5);
  }
  return vectors;
}

describe('VectorStore search equals brute force', () => {
  for (const kernel of KERNELS) {
    it(`${kernel}: random data with ties, k = 1, 10, > size, sync and async`, async () => {
      const store = new VectorStore({ dim: 37, kernel, capacity: 8 });
      const vectors = fillStore(store, 400, 1);
      const rand = rng(2);
      const queries = [randomVector(rand, 37), vectors[3], vectors[10]];
      for (const q of queries) {
        for (const k of [1, 10, 3, 1000]) {
          const expected = bruteForce(store, q, k);
          assert.deepEqual(store.searchSync(q, k), expected);
          assert.deepEqual(await store.search(q, k), expected);
        }
      }
      // Queries equal to duplicated vectors produce exact score ties, decided by id.
      const tied = store.searchSync(vectors[3], 2);
      assert.equal(tied[0].score, tied[1].score);
      assert.ok(tied[0].id < tied[1].id);
      assert.equal(store.searchSync(vectors[3], 1000).length, 400);
    });

    it(`${kernel}: large store through the threaded path, batch of queries`, async () => {
      const store = new VectorStore({ dim: 64, kernel, threads: 2 });
      fillStore(store, 5000, 3);
      const rand = rng(4);
      const queries = [randomVector(rand, 64), randomVector(rand, 64), randomVector(rand, 64)];
      const batch = await store.searchBatch(queries, 10);
      queries.forEach((q, i) => assert.deepEqual(batch[i], bruteForce(store, q, 10)));
      assert.deepEqual(store.searchBatchSync(queries, 25), queries.map((q) => bruteForce(store, q, 25)));
    });

    it(`${kernel}: many exact ties beyond the first candidate window`, () => {
      // 100 identical vectors: the true top-10 is decided purely by id, which forces the
      // candidate window to widen until it covers every tied row.
      const store = new VectorStore({ dim: 8, kernel });
      const v = [1, 2, 3, 4, 5, 6, 7, 8];
      for (let i = 0; i < 100; i++) store.add(`t${String((i * 37) % 100).padStart(3, '0')}`, v, 0);
      store.add('other', [8, 7, 6, 5, 4, 3, 2, 1], 0);
      const hits = store.searchSync(v, 10);
      assert.deepEqual(hits.map((h) => h.id), Array.from({ length: 10 }, (_, i) => `t${String(i).padStart(3, '0')}`));
      assert.deepEqual(hits, bruteForce(store, v, 10));
    });

    it(`${kernel}: version filters`, async () => {
      const store = new VectorStore({ dim: 16, kernel });
      fillStore(store, 300, 5);
      const q = randomVector(rng(6), 16);
      for (const f of [{ minVersion: 3 }, { maxVersion: 1 }, { minVersion: 2, maxVersion: 2 }, { minVersion: 9 }]) {
        assert.deepEqual(await store.search(q, 20, f), bruteForce(store, q, 20, f));
      }
      assert.deepEqual(store.searchSync(q, 5, { minVersion: 9 }), []);
    });
  }

  it('native and TypeScript paths give identical results', { skip: !native && 'addon without vector kernels' }, async () => {
    const a = new VectorStore({ dim: 50, kernel: 'native' });
    const b = new VectorStore({ dim: 50, kernel: 'js' });
    fillStore(a, 6000, 7);
    fillStore(b, 6000, 7);
    const rand = rng(8);
    for (let i = 0; i < 5; i++) {
      const q = randomVector(rand, 50);
      assert.deepEqual(await a.search(q, 10, { minVersion: 1 }), await b.search(q, 10, { minVersion: 1 }));
    }
  });
});

describe('VectorStore writes', () => {
  it('add / update / upsert / delete / get / has / size', () => {
    const store = new VectorStore({ dim: 3, capacity: 1 });
    store.add('a', [3, 0, 4], 1);
    assert.equal(store.upsert('b', [0, 2, 0], 2), true);
    assert.equal(store.upsert('b', [0, 0, 5], 3), false);
    assert.equal(store.size, 2);
    assert.deepEqual(Array.from(store.get('a').vector), Array.from(new Float32Array([0.6, 0, 0.8])));
    assert.equal(store.get('b').version, 3);
    assert.equal(typeof store.get('b').updatedAt, 'number');
    assert.deepEqual(store.searchSync([0, 0, 1], 1).map((h) => h.id), ['b']);
    store.update('a', [0, 0, 1], 4);
    assert.deepEqual(store.searchSync([0, 0, 1], 2), [{ id: 'a', score: 1, version: 4 }, { id: 'b', score: 1, version: 3 }]);
    assert.equal(store.delete('a'), true);
    assert.equal(store.delete('a'), false);
    assert.equal(store.has('a'), false);
    assert.equal(store.get('a'), undefined);
    assert.deepEqual(store.searchSync([0, 0, 1], 5).map((h) => h.id), ['b']);
    assert.throws(() => store.add('b', [1, 0, 0], 0), { name: 'RangeError', message: 'Expected an id not in the store for id but received "b" of type string (use update or upsert)' });
    assert.throws(() => store.update('zz', [1, 0, 0], 0), { name: 'RangeError', message: 'Expected an id in the store for id but received "zz" of type string (use add or upsert)' });
  });

  it('deletes compact the slab and keep every other record intact', () => {
    const store = new VectorStore({ dim: 5, kernel: 'js' });
    const vectors = fillStore(store, 200, 9);
    const before = new Map(store.ids().map((id) => [id, store.get(id)]));
    const doomed = store.ids().filter((_, i) => i % 3 === 0);
    for (const id of doomed) store.delete(id);
    assert.equal(store.size, 200 - doomed.length);
    for (const id of store.ids()) assert.deepEqual(store.get(id), before.get(id));
    const q = vectors[5];
    assert.deepEqual(store.searchSync(q, 30), bruteForce(store, q, 30));
    store.shrinkToFit();
    assert.equal(store.capacity, store.size);
    assert.deepEqual(store.searchSync(q, 30), bruteForce(store, q, 30));
  });

  it('staleIds and stalenessHistogram', () => {
    const store = new VectorStore({ dim: 2 });
    store.add('x', [1, 0], 3);
    store.add('c', [1, 1], 1);
    store.add('a', [0, 1], 1);
    store.add('b', [1, 2], 0);
    store.add('n', [2, 1], 5);
    assert.deepEqual(store.staleIds(3), ['b', 'a', 'c']);
    assert.deepEqual(store.staleIds(3, 2), ['b', 'a']);
    assert.deepEqual(store.staleIds(0), []);
    assert.deepEqual(store.stalenessHistogram(4), [
      { version: 5, age: -1, count: 1 }, { version: 3, age: 1, count: 1 }, { version: 1, age: 3, count: 2 }, { version: 0, age: 4, count: 1 },
    ]);
    store.upsert('b', [1, 2], 4);
    assert.deepEqual(store.staleIds(3), ['a', 'c']);
  });

  it('writes during an asynchronous search are refused with ERR_BUSY', { skip: !native && 'addon without vector kernels' }, async () => {
    const store = new VectorStore({ dim: 256, kernel: 'native' });
    fillStore(store, 4000, 10);
    const pending = store.search(randomVector(rng(11), 256), 10);
    assert.throws(() => store.upsert('new', randomVector(rng(12), 256), 1), { code: 'ERR_BUSY' });
    assert.throws(() => store.delete(store.ids()[0]), { code: 'ERR_BUSY' });
    await pending;
    store.upsert('new', randomVector(rng(12), 256), 1);
    assert.equal(store.has('new'), true);
  });
});

describe('VectorStore argument checks', () => {
  const store = new VectorStore({ dim: 3 });
  store.add('a', [1, 0, 0], 0);
  it('reports bad arguments in the house wording', async () => {
    assert.throws(() => store.searchSync([1, 0, 0], 0), { name: 'RangeError', message: 'Expected positive integer for k but received 0 of type number' });
    assert.throws(() => store.searchSync([1, 0, 0], 1.5), { name: 'TypeError', message: 'Expected positive integer for k but received 1.5 of type number' });
    await assert.rejects(store.search([1, 0, 0], '3'), { name: 'TypeError', message: 'Expected positive integer for k but received "3" of type string' });
    assert.throws(() => store.searchSync([1, 0], 1), { name: 'RangeError', message: 'Expected vector of length 3 for query but received array(2)' });
    assert.throws(() => store.upsert('b', [0, 0, 0], 0), { name: 'RangeError', message: 'Expected non-zero vector for vector but received all zeros' });
    assert.throws(() => store.upsert('b', [0, NaN, 0], 0), { name: 'TypeError', message: 'Expected finite numbers in vector but received NaN at index 1' });
    assert.throws(() => store.upsert('b', [1, 0, 0], -1), { name: 'RangeError', message: 'Expected integer between 0 and 9007199254740991 for version but received -1 of type number' });
    assert.throws(() => store.upsert('', [1, 0, 0], 0), { name: 'TypeError', message: 'Expected non-empty string for id but received "" of type string' });
    assert.throws(() => store.searchSync([1, 0, 0], 1, { minVersoin: 1 }), { name: 'TypeError', message: 'Unknown option "minVersoin" in options; did you mean "minVersion"?' });
    assert.throws(() => new VectorStore({ dim: 0 }), { name: 'RangeError', message: 'Expected positive integer for dim but received 0 of type number' });
    assert.throws(() => new VectorStore({ dim: 4, kernel: 'gpu' }), { name: 'TypeError', message: 'Expected one of "auto", "native", "js" for kernel but received "gpu" of type string' });
    assert.equal(store.size, 1);
  });

  it('the native kernel rejects wrong types instead of crashing', { skip: !native && 'addon without vector kernels' }, () => {
    assert.throws(() => native.vectorTopKSync([1, 2], 1, 2, new Float32Array(2), 1), { name: 'TypeError', message: /Float32Array for slab/ });
    assert.throws(() => native.vectorTopKSync(new Float32Array(4), 3, 2, new Float32Array(2), 1), { name: 'RangeError', message: /at least rows\*dim = 6/ });
    assert.throws(() => native.vectorTopKSync(new Float32Array(4), 2, 2, new Float32Array(3), 1), { name: 'RangeError', message: /multiple of dim/ });
    assert.throws(() => native.vectorTopKSync(new Float32Array(4), 2, 2, new Float32Array(2), 1, { versions: new Float32Array(2) }), { name: 'TypeError', message: /Float64Array for versions/ });
    const r = native.vectorTopKSync(new Float32Array([1, 0, 0, 1, NaN, 0]), 3, 2, new Float32Array([1, 0]), 5);
    assert.deepEqual({ k: r.k, rows: Array.from(r.rows), counts: Array.from(r.counts) }, { k: 3, rows: [0, 1, -1], counts: [2] });
    assert.equal(native.vectorSumSync(new Float32Array([1, 2, 3.5]), 3, 1), 6.5);
  });
});
