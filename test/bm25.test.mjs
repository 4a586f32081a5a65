// Bm25Index and the English analyzer: hand-computed scores, analysis, ranking, persistence.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

const require = createRequire(import.meta.url);
const { Bm25Index, createEnglishAnalyzer } = require('../dist/store/index.js');

const root = mkdtempSync(join(tmpdir(), 'bm25-'));
after(() => rmSync(root, { recursive: true, force: true }));

describe('Bm25Index', () => {
  it('scores equal hand-computed BM25 (k1 = 0.9, b = 0.4, Lucene idf) on three documents', () => {
    const bm25 = new Bm25Index();
    bm25.add('d1', 'cat dog'); // length 2
    bm25.add('d2', 'cat cat fish'); // length 3
    bm25.add('d3', 'bird'); // length 1
    // N = 3, avgdl = 2. idf(cat) = ln(1 + (3 - 2 + 0.5)/(2 + 0.5)) = ln 1.6; idf(bird) = ln(1 + 2.5/1.5) = ln(8/3).
    // d1: tf 1, norm 0.9·(0.6 + 0.4·2/2) = 0.9    → ln1.6 · 1·1.9/(1 + 0.9)
    // d2: tf 2, norm 0.9·(0.6 + 0.4·3/2) = 1.08   → ln1.6 · 2·1.9/(2 + 1.08)
    // d3: tf 1, norm 0.9·(0.6 + 0.4·1/2) = 0.72   → ln(8/3) · 1·1.9/(1 + 0.72)
    const expected = [
      { id: 'd3', score: Math.log(8 / 3) * 1.9 / 1.72 },
      { id: 'd2', score: Math.log(1.6) * 3.8 / 3.08 },
      { id: 'd1', score: Math.log(1.6) * 1.9 / 1.9 },
    ];
    const hits = bm25.search('cat bird', 10);
    assert.deepEqual(hits.map((h) => h.id), expected.map((h) => h.id));
    hits.forEach((h, i) => assert.ok(Math.abs(h.score - expected[i].score) < 1e-12, `${h.id}: ${h.score} vs ${expected[i].score}`));
    assert.ok(Math.abs(bm25.idf('cat') - Math.log(1.6)) < 1e-15);
    // a repeated query term counts twice (Anserini's bag-of-words query weights)
    assert.ok(Math.abs(bm25.search('bird bird', 1)[0].score - 2 * expected[0].score) < 1e-12);
    assert.deepEqual(bm25.search('cat bird', 2).map((h) => h.id), ['d3', 'd2']);
    assert.deepEqual(bm25.search('zebra', 5), []);
  });

  it('k1 and b change the scores as the formula says', () => {
    const bm25 = new Bm25Index({ k1: 1.2, b: 0.75 });
    bm25.add('a', 'cat dog');
    bm25.add('b', 'dog');
    // N = 2, avgdl = 1.5, idf(cat) = ln(1 + 1.5/1.5) = ln 2; norm = 1.2·(0.25 + 0.75·2/1.5) = 1.5
    const [hit] = bm25.search('cat', 1);
    assert.ok(Math.abs(hit.score - Math.log(2) * 2.2 / 2.5) < 1e-12);
  });

  it('analyzer: lower-case, split, stop words, possessives, Porter2 stems', () => {
    const analyze = createEnglishAnalyzer();
    assert.deepEqual(analyze("The Runner's dogs are RUNNING, and it was connected-ly fast!"), ['runner', 'dog', 'run', 'connect', 'ly', 'fast']);
    assert.deepEqual(analyze('studies studying studied'), ['studi', 'studi', 'studi']);
    assert.deepEqual(analyze('the of and to a in is it'), []);
    assert.deepEqual(createEnglishAnalyzer({ stopWords: false, stem: false })('The Dogs'), ['the', 'dogs']);
    assert.throws(() => createEnglishAnalyzer({ stopword: [] }), { message: 'Unknown option "stopword" in options; did you mean "stopWords"?' });
  });

  it('ranks sensibly: stems match, more and denser matches rank higher, stop words alone match nothing', () => {
    const bm25 = new Bm25Index();
    bm25.add('long', 'the tide rises because the moon pulls the ocean, and many other words dilute this long passage about beaches sand and summer holidays');
    bm25.add('short', 'Tides are caused by the moon.');
    bm25.add('none', 'A recipe for apple pie with cinnamon.');
    bm25.add('twice', 'Tidal tides: the moon and the tides.');
    const hits = bm25.search('What causes the tides?', 10);
    assert.deepEqual(hits.map((h) => h.id), ['short', 'twice', 'long']);
    assert.deepEqual(bm25.search('the and of', 10), []);
    assert.deepEqual(bm25.search('caused', 1).map((h) => h.id), ['short']);
    assert.throws(() => bm25.add('short', 'again'), { name: 'RangeError', message: 'Expected an id not in the index for id but received "short" of type string' });
    assert.throws(() => bm25.search('tide', 0), { name: 'RangeError', message: 'Expected positive integer for k but received 0 of type number' });
  });

  it('adds documents incrementally and round-trips through save/load', async () => {
    const bm25 = new Bm25Index({ k1: 1.1, b: 0.5 });
    for (let i = 0; i < 200; i++) bm25.add(`doc${i}`, `word${i % 17} common topic${i % 5} ${'filler '.repeat(i % 9)}`);
    const before = bm25.search('word3 topic2 common', 20);
    bm25.add('late', 'word3 word3 topic2');
    assert.equal(bm25.search('word3 topic2 common', 1)[0].id, 'late');
    const dir = join(root, 'bm25');
    await bm25.save(dir);
    const loaded = await Bm25Index.load(dir);
    assert.equal(loaded.size, 201);
    assert.equal(loaded.k1, 1.1);
    assert.deepEqual(loaded.search('word3 topic2 common', 50), bm25.search('word3 topic2 common', 50));
    assert.notDeepEqual(before, bm25.search('word3 topic2 common', 20));
    const file = join(dir, readdirSync(dir).find((f) => f.startsWith('index.')));
    writeFileSync(file, '{}');
    await assert.rejects(Bm25Index.load(dir), { code: 'ERR_STORE', message: new RegExp(`^Store file ${file} has 2 bytes`) });
  });

  it('an index built with a custom analyzer needs it again to load', async () => {
    const analyzer = (text) => text.split(/\s+/).filter(Boolean);
    const bm25 = new Bm25Index({ analyzer });
    bm25.add('x', 'Hello World');
    const dir = join(root, 'custom');
    await bm25.save(dir);
    await assert.rejects(Bm25Index.load(dir), { name: 'TypeError', message: `The BM25 index at ${dir} was built with a custom analyzer; pass it as options.analyzer` });
    assert.deepEqual((await Bm25Index.load(dir, { analyzer })).search('World', 1).map((h) => h.id), ['x']);
  });
});
