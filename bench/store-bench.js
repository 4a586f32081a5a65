#!/usr/bin/env node
// Microbenchmark of the store layer: exact top-10 over N×D random unit vectors against the
// machine's memory-bandwidth bound (a native streaming sum over the same bytes with the same
// threads), upsert throughput, the TypeScript fallback, HNSW recall@10/latency, and BM25.
//
//   node bench/store-bench.js [--n 100000] [--dim 1536] [--threads 0] [--hnsw-n 10000] [--json FILE]
//
// Requires the compiled package (npx tsc -p .) and, for the native rows, the addon (npm run build:native).
'use strict';
const { writeFileSync } = require('node:fs');
const os = require('node:os');
const { VectorStore, HnswStore, Bm25Index, loadVectorKernels } = require('../dist/store/index.js');

function parseArgs(argv) {
  const args = { n: 100000, dim: 1536, threads: 0, hnswN: 10000, queries: 100, json: null };
  for (let i = 2; i < argv.length; i++) {
    const [key, value] = [argv[i], argv[i + 1]];
    if (key === '--n') args.n = Number(value);
    else if (key === '--dim') args.dim = Number(value);
    else if (key === '--threads') args.threads = Number(value);
    else if (key === '--hnsw-n') args.hnswN = Number(value);
    else if (key === '--queries') args.queries = Number(value);
    else if (key === '--json') args.json = value;
    else throw new Error(`unknown argument ${key}; see the header of ${__filename}`);
    i++;
  }
  return args;
}

// Seeded xorshift so runs are comparable; values in [-1, 1).
function makeRandom(seed) {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s / 2147483648 - 1;
  };
}

function randomRows(rand, rows, dim) {
  const out = new Float32Array(rows * dim);
  for (let i = 0; i < out.length; i++) out[i] = rand();
  return out;
}

async function measure(name, fn, { iterations, time = 0 }) {
  const { Bench } = await import('tinybench');
  const bench = new Bench({ iterations, time, warmupIterations: Math.min(3, iterations), warmupTime: 0 });
  bench.add(name, fn);
  await bench.run();
  const r = bench.tasks[0].result;
  if (r.state !== 'completed') throw r.error ?? new Error(`${name}: ${r.state}`);
  return { name, meanMs: r.latency.mean, p50Ms: r.latency.p50, minMs: r.latency.min, samples: r.latency.samplesCount ?? iterations };
}

async function main() {
  const args = parseArgs(process.argv);
  const { n, dim, threads } = args;
  const kernels = loadVectorKernels();
  const info = kernels ? kernels.vectorKernelInfo() : { isa: 'none (addon not built)', hardwareThreads: os.cpus().length };
  const bytes = n * dim * 4;
  console.log(`store-bench: ${n} x ${dim} F32 (${(bytes / 2 ** 20).toFixed(0)} MiB), kernel ${info.isa}, threads ${threads || info.hardwareThreads} of ${info.hardwareThreads}, ${os.cpus()[0]?.model ?? ''}`);

  const rand = makeRandom(42);
  const data = randomRows(rand, n, dim);
  const store = new VectorStore({ dim, capacity: n, threads, kernel: kernels ? 'native' : 'js' });
  const t0 = performance.now();
  for (let i = 0; i < n; i++) store.add(`doc${i}`, data.subarray(i * dim, (i + 1) * dim), 0);
  const loadSeconds = (performance.now() - t0) / 1000;
  const queries = Array.from({ length: 16 }, () => randomRows(rand, 1, dim));
  let qi = 0;
  const rows = [];

  rows.push(await measure('exact top-10 (native, async)', async () => { await store.search(queries[qi++ % 16], 10); }, { iterations: 30 }));
  if (kernels) {
    // The bound: the same bytes streamed by the same threads and SIMD width, doing nothing else.
    rows.push(await measure('bandwidth: native sum of same bytes', async () => { await kernels.vectorSum(data, data.length, threads); }, { iterations: 30 }));
  }
  const jsStore = new VectorStore({ dim, capacity: Math.min(n, 20000), kernel: 'js' });
  for (let i = 0; i < Math.min(n, 20000); i++) jsStore.add(`doc${i}`, data.subarray(i * dim, (i + 1) * dim), 0);
  const jsRow = await measure(`exact top-10 (TypeScript), ${jsStore.size} rows`, () => { jsStore.searchSync(queries[qi++ % 16], 10); }, { iterations: 5 });
  rows.push(jsRow);

  const upsertRows = randomRows(rand, 1024, dim);
  let ui = 0;
  const upsert = await measure('upsert (overwrite, 1 vector)', () => {
    const i = ui++ % 1024;
    store.upsert(`doc${(i * 97) % n}`, upsertRows.subarray(i * dim, (i + 1) * dim), 1);
  }, { iterations: 2000, time: 500 });
  rows.push(upsert);

  const exact = rows[0];
  const bandwidth = rows.find((r) => r.name.startsWith('bandwidth'));
  const summary = {
    machine: { cpu: os.cpus()[0]?.model, cpus: os.cpus().length, isa: info.isa, threads: threads || info.hardwareThreads },
    n, dim, bytes, loadSeconds,
    exactTop10Ms: exact.meanMs,
    exactGBps: bytes / (exact.meanMs / 1000) / 1e9,
    bandwidthGBps: bandwidth ? bytes / (bandwidth.meanMs / 1000) / 1e9 : null,
    fractionOfBandwidth: bandwidth ? bandwidth.meanMs / exact.meanMs : null,
    // Medians resist interference from other processes on a shared machine.
    fractionOfBandwidthMedian: bandwidth ? bandwidth.p50Ms / exact.p50Ms : null,
    jsTop10MsPer100k: (jsRow.meanMs * 100000) / jsStore.size,
    upsertsPerSecond: 1000 / upsert.meanMs,
  };

  // HNSW on a prefix of the same data (building a graph over all N takes minutes on a laptop).
  const hn = Math.min(args.hnswN, n);
  const ann = new HnswStore({ dim, capacity: hn, m: 16, efConstruction: 100, efSearch: 64 });
  const exactSmall = new VectorStore({ dim, capacity: hn, threads, kernel: kernels ? 'native' : 'js' });
  const tb = performance.now();
  for (let i = 0; i < hn; i++) {
    const v = data.subarray(i * dim, (i + 1) * dim);
    ann.add(`doc${i}`, v, 0);
    exactSmall.add(`doc${i}`, v, 0);
  }
  summary.hnsw = { n: hn, m: 16, efConstruction: 100, buildSeconds: (performance.now() - tb) / 1000, efSearch: {} };
  const hq = Array.from({ length: args.queries }, () => randomRows(rand, 1, dim));
  const truth = await exactSmall.searchBatch(hq, 10);
  for (const ef of [64, 256]) {
    ann.efSearch = ef;
    let found = 0;
    hq.forEach((q, i) => {
      const want = new Set(truth[i].map((h) => h.id));
      for (const h of ann.searchSync(q, 10)) if (want.has(h.id)) found++;
    });
    const lat = await measure(`HNSW top-10, ${hn} rows, efSearch ${ef}`, () => { ann.searchSync(hq[qi++ % hq.length], 10); }, { iterations: 200, time: 500 });
    rows.push(lat);
    summary.hnsw.efSearch[ef] = { recallAt10: found / (10 * hq.length), meanMs: lat.meanMs };
  }
  const exactSmallRow = await measure(`exact top-10 (native), ${hn} rows`, async () => { await exactSmall.search(hq[qi++ % hq.length], 10); }, { iterations: 50 });
  rows.push(exactSmallRow);

  // BM25 over synthetic text with a Zipf-like vocabulary, as a baseline's order of magnitude.
  const bm25 = new Bm25Index();
  const vocab = Array.from({ length: 5000 }, (_, i) => `w${i.toString(36)}`);
  const word = () => vocab[Math.floor(vocab.length * ((rand() + 1) / 2) ** 3)];
  const tbm = performance.now();
  for (let d = 0; d < 20000; d++) bm25.add(`d${d}`, Array.from({ length: 60 }, word).join(' '));
  summary.bm25 = { docs: 20000, indexSeconds: (performance.now() - tbm) / 1000 };
  const bmRow = await measure('BM25 top-10, 20000 docs, 4-term query', () => { bm25.search(`${word()} ${word()} ${word()} ${word()}`, 10); }, { iterations: 200, time: 500 });
  rows.push(bmRow);
  summary.bm25.meanMs = bmRow.meanMs;
  summary.rows = rows;

  console.table(rows.map((r) => ({ task: r.name, 'mean ms': r.meanMs.toFixed(3), 'p50 ms': r.p50Ms.toFixed(3), 'min ms': r.minMs.toFixed(3), samples: r.samples })));
  console.log(`exact top-10: ${summary.exactTop10Ms.toFixed(2)} ms = ${summary.exactGBps.toFixed(2)} GB/s scanned`);
  if (bandwidth) console.log(`bandwidth bound: ${summary.bandwidthGBps.toFixed(2)} GB/s -> exact search reaches ${(100 * summary.fractionOfBandwidth).toFixed(1)}% of it (medians: ${(100 * summary.fractionOfBandwidthMedian).toFixed(1)}%)`);
  console.log(`upsert: ${summary.upsertsPerSecond.toFixed(0)} vectors/s; TypeScript fallback: ${summary.jsTop10MsPer100k.toFixed(0)} ms per 100k rows`);
  for (const [ef, r] of Object.entries(summary.hnsw.efSearch)) {
    console.log(`HNSW (${hn} rows, M 16, efC 100, built in ${summary.hnsw.buildSeconds.toFixed(1)} s) efSearch ${ef}: recall@10 ${r.recallAt10.toFixed(3)}, ${r.meanMs.toFixed(3)} ms/query (exact on the same rows: ${exactSmallRow.meanMs.toFixed(3)} ms)`);
  }
  console.log(`BM25: 20000 docs indexed in ${summary.bm25.indexSeconds.toFixed(2)} s, ${summary.bm25.meanMs.toFixed(3)} ms/query`);
  if (args.json) writeFileSync(args.json, `${JSON.stringify(summary, null, 2)}\n`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
