// Save/load of VectorStore, HnswStore and Bm25Index directories: round trips and corruption.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

const require = createRequire(import.meta.url);
const { VectorStore, HnswStore } = require('../dist/store/index.js');

const root = mkdtempSync(join(tmpdir(), 'store-persist-'));
after(() => rmSync(root, { recursive: true, force: true }));

function filled(n, dim, seed = 1) {
  const store = new VectorStore({ dim });
  let s = seed;
  const rand = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1;
  for (let i = 0; i < n; i++) store.add(`id${i}`, Array.from({ length: dim }, rand), i % 4);
  return store;
}

function snapshot(store) {
  return store.ids().sort().map((id) => {
    const r = store.get(id);
    return { ...r, vector: Array.from(r.vector) };
  });
}

function partFile(dir, name) {
  return readdirSync(dir).find((f) => f.startsWith(`${name}.`) && f.endsWith('.bin'));
}

describe('VectorStore persistence', () => {
  it('round-trips records, versions, times and search results', async () => {
    const dir = join(root, 'roundtrip');
    const store = filled(300, 24);
    store.delete('id7');
    await store.save(dir);
    const loaded = await VectorStore.load(dir);
    assert.equal(loaded.size, 299);
    assert.equal(loaded.dim, 24);
    assert.deepEqual(snapshot(loaded), snapshot(store));
    const q = Array.from({ length: 24 }, (_, i) => Math.cos(i));
    assert.deepEqual(await loaded.search(q, 15), await store.search(q, 15));
    // the loaded store is writable and grows past its loaded capacity
    loaded.add('fresh', q, 9);
    assert.equal(loaded.size, 300);
  });

  it('a second save replaces the first and removes its files', async () => {
    const dir = join(root, 'twice');
    const store = filled(50, 8);
    await store.save(dir);
    store.upsert('id1', [1, 0, 0, 0, 0, 0, 0, 0], 5);
    await store.save(dir);
    assert.deepEqual(readdirSync(dir).sort(), ['manifest.json', 'records.2.bin', 'vectors.2.bin']);
    assert.deepEqual(snapshot(await VectorStore.load(dir)), snapshot(store));
  });

  it('a save leaves files it did not write alone, even ones named like parts', async () => {
    const dir = join(root, 'shared-dir');
    await filled(10, 8).save(dir);
    writeFileSync(join(dir, 'weights.1.bin'), 'the user\'s own file');
    await filled(10, 8, 2).save(dir);
    assert.deepEqual(readdirSync(dir).sort(), ['manifest.json', 'records.2.bin', 'vectors.2.bin', 'weights.1.bin']);
    assert.equal(readFileSync(join(dir, 'weights.1.bin'), 'utf8'), 'the user\'s own file');
  });

  it('an empty store round-trips', async () => {
    const dir = join(root, 'empty');
    await new VectorStore({ dim: 5 }).save(dir);
    const loaded = await VectorStore.load(dir);
    assert.equal(loaded.size, 0);
    assert.deepEqual(loaded.searchSync([1, 0, 0, 0, 0], 3), []);
  });

  it('corrupt, truncated or missing files fail with ERR_STORE naming the file', async () => {
    const dir = join(root, 'corrupt');
    await filled(100, 16).save(dir);
    const vectors = join(dir, partFile(dir, 'vectors'));
    const records = join(dir, partFile(dir, 'records'));
    const manifest = join(dir, 'manifest.json');
    const original = readFileSync(vectors);

    const flipped = Buffer.from(original);
    flipped[1234] ^= 0x10;
    writeFileSync(vectors, flipped);
    await assert.rejects(VectorStore.load(dir), { code: 'ERR_STORE', message: `Store file ${vectors} fails its SHA-256 checksum (corrupt)` });

    truncateSync(vectors, original.length - 4);
    await assert.rejects(VectorStore.load(dir), { code: 'ERR_STORE', message: `Store file ${vectors} has ${original.length - 4} bytes, the manifest says ${original.length} (truncated or corrupt)` });
    writeFileSync(vectors, original);
    await VectorStore.load(dir);

    const recordsText = readFileSync(records);
    writeFileSync(records, Buffer.concat([recordsText, Buffer.from(' ')]));
    await assert.rejects(VectorStore.load(dir), { code: 'ERR_STORE', message: new RegExp(`^Store file ${records} has`) });
    writeFileSync(records, recordsText);

    const manifestText = readFileSync(manifest, 'utf8');
    writeFileSync(manifest, manifestText.replace('"size": 100', '"size": 99'));
    await assert.rejects(VectorStore.load(dir), { code: 'ERR_STORE', message: `Store manifest ${manifest} fails its checksum (corrupt)` });
    writeFileSync(manifest, manifestText.slice(0, 40));
    await assert.rejects(VectorStore.load(dir), { code: 'ERR_STORE', message: `Store manifest ${manifest} is not valid JSON (corrupt or truncated)` });
    writeFileSync(manifest, manifestText);

    rmSync(vectors);
    await assert.rejects(VectorStore.load(dir), { code: 'ERR_STORE', message: `Cannot read store file ${vectors} (ENOENT)` });
    await assert.rejects(VectorStore.load(join(root, 'nothing-here')), { code: 'ERR_STORE', message: /^No store at .*nothing-here: cannot read .*manifest\.json \(ENOENT\)$/ });
  });

  it('refuses a directory of another kind', async () => {
    const dir = join(root, 'kind');
    const ann = new HnswStore({ dim: 4 });
    ann.add('a', [1, 2, 3, 4], 0);
    await ann.save(dir);
    await assert.rejects(VectorStore.load(dir), { code: 'ERR_STORE', message: `Store ${join(dir, 'manifest.json')} holds a "hnsw-vector-store" store, expected "exact-vector-store"` });
  });
});
