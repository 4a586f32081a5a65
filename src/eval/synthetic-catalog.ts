import { assertInteger, checkKeys } from '../util/validate';
import type { BeirDoc, BeirQuery } from './beir';
import type { Qrels } from './trec';

/**
 * Word tables of the catalogue task, [listing word, query word]. They share no word with the
 * tables of synthetic-words.ts, so a setting chosen on that generator's tasks meets new vocabulary
 * here as well as a new document shape.
 */
const ITEMS = [
  ['sofa', 'couch'], ['backpack', 'rucksack'], ['skillet', 'frying pan'], ['sneakers', 'trainers'], ['jacket', 'coat'],
  ['headphones', 'earphones'], ['mattress', 'bed pad'], ['wristwatch', 'watch'], ['blender', 'mixer'], ['notebook', 'journal'],
  ['flashlight', 'torch'], ['suitcase', 'luggage'], ['armchair', 'recliner'], ['wallet', 'billfold'], ['sweater', 'jumper'],
  ['faucet', 'tap'], ['stroller', 'pram'], ['trousers', 'pants'], ['refrigerator', 'fridge'], ['rug', 'mat'],
] as const;
const MATERIALS = [
  ['steel', 'metal'], ['cotton', 'fabric'], ['walnut', 'hardwood'], ['ceramic', 'porcelain'], ['suede', 'nubuck'],
  ['bamboo', 'cane'], ['nylon', 'synthetic'], ['wool', 'knit'], ['glass', 'crystal'], ['rubber', 'latex'],
] as const;
const COLOURS = [
  ['crimson', 'red'], ['navy', 'dark blue'], ['ivory', 'off-white'], ['charcoal', 'dark grey'], ['olive', 'green'],
  ['amber', 'orange'], ['violet', 'purple'], ['ebony', 'black'],
] as const;
const BRAND_PARTS = ['zu', 'qe', 'xo', 'vy', 'bri', 'dax', 'fim', 'gor', 'hux', 'jex', 'kry', 'lom', 'nix', 'opa', 'pru', 'tiv'];
const PRAISE = ['Customers praise its finish.', 'Ships in recycled packaging.', 'Comes with a two-year warranty.', 'Assembled by hand.'];

/** Options of {@link makeCatalogTask}; every field has a default. */
export interface CatalogTaskOptions {
  /** Seed (unsigned 32-bit); the same options always give the same task. Default 1. */
  seed?: number;
  /** Product listings, 20–1600; half are asked about in training, the other half are held out. Default 120. */
  items?: number;
  /** Hard negatives per training record: other training listings of the same brand or item. Default 3. */
  negatives?: number;
}

/** Training pairs and a held-out split in BEIR's shape (the same shape as makeRetrievalTask's). */
export interface CatalogTask {
  train: { id: string; query: string; positive: string; negatives: string[] }[];
  heldOut: { corpus: BeirDoc[]; queries: BeirQuery[]; qrels: Qrels };
}

// xorshift32 with a splitmix-style seed scramble: a different stream from the other generators'.
function rng(seed: number): () => number {
  let x = (Math.imul(seed ^ 0x5bd1e995, 0x27d4eb2d) ^ 0x165667b1) >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 4294967296;
  };
}

/**
 * A product-catalogue retrieval task, built differently from makeRetrievalTask (which asks about
 * people, inventions and towns): each document is a shop listing — brand, colour, material and kind
 * of item, a model number, a price and filler — and its query asks for the same product in other
 * words ("a dark blue metal torch by Zuqe" for "Zuqe's navy steel flashlight"). Brands recur across
 * listings, so the brand alone does not identify a product; the query's paraphrased attributes
 * must be matched by meaning. Listings are split in two: training records pair a query with its
 * listing (hard negatives: other training listings of the same brand or item), and the held-out
 * split's queries, listings and distractors are the other half, never seen in training.
 *
 * @example
 * const { train, heldOut } = makeCatalogTask({ seed: 5, items: 200 });
 */
export function makeCatalogTask(options: CatalogTaskOptions = {}): CatalogTask {
  checkKeys(options, ['seed', 'items', 'negatives'], 'options');
  const o = { seed: 1, items: 120, negatives: 3, ...options };
  assertInteger(o.seed, 'options.seed', 0, 0xffffffff);
  assertInteger(o.items, 'options.items', 20, ITEMS.length * MATERIALS.length * COLOURS.length);
  assertInteger(o.negatives, 'options.negatives', 0, 16);
  const rand = rng(o.seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const nBrands = Math.max(4, Math.round(o.items / 10));
  const brands = new Set<string>();
  while (brands.size < nBrands) brands.add(pick(BRAND_PARTS) + pick(BRAND_PARTS));
  const brandNames = [...brands].map((b) => b[0]!.toUpperCase() + b.slice(1));

  // Every (item, material, colour) at most once, so each query has one right listing.
  const combos: [number, number, number][] = [];
  for (let i = 0; i < ITEMS.length; i++) for (let m = 0; m < MATERIALS.length; m++) for (let c = 0; c < COLOURS.length; c++) combos.push([i, m, c]);
  for (let i = combos.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [combos[i], combos[j]] = [combos[j]!, combos[i]!];
  }
  const products = combos.slice(0, o.items).map(([i, m, c], k) => {
    const brand = brandNames[Math.floor(rand() * brandNames.length)]!;
    const [item, itemQ] = ITEMS[i]!;
    const [mat, matQ] = MATERIALS[m]!;
    const [col, colQ] = COLOURS[c]!;
    const model = `${String.fromCharCode(65 + Math.floor(rand() * 26))}${100 + Math.floor(rand() * 900)}`;
    const price = 10 + Math.floor(rand() * 490);
    const text = pick([
      `${brand} ${model}: a ${col} ${mat} ${item}, priced at ${price} dollars. ${pick(PRAISE)}`,
      `The ${col} ${item} from ${brand} (model ${model}) is made of ${mat} and sells for ${price} dollars. ${pick(PRAISE)}`,
    ]);
    const query = pick([
      `${colQ} ${matQ} ${itemQ} by ${brand}`,
      `looking for a ${itemQ} made by ${brand}, ${matQ}, in ${colQ}`,
      `does ${brand} sell a ${colQ} ${itemQ} of ${matQ}?`,
    ]);
    return { id: `p${k}`, brand, item: i, doc: { id: `p${k}`, title: `${brand} ${model}`, text }, query };
  });

  const half = Math.floor(products.length / 2);
  const trainProducts = products.slice(0, half);
  const heldProducts = products.slice(half);
  const textOf = (d: BeirDoc) => `${d.title}\n${d.text}`;
  const train = trainProducts.map((p) => {
    const similar = trainProducts.filter((q) => q !== p && (q.brand === p.brand || q.item === p.item));
    const negatives: string[] = [];
    while (negatives.length < Math.min(o.negatives, similar.length)) {
      const n = textOf(similar.splice(Math.floor(rand() * similar.length), 1)[0]!.doc);
      negatives.push(n);
    }
    return { id: `q-${p.id}`, query: p.query, positive: textOf(p.doc), negatives };
  });
  const qrels: Qrels = new Map(heldProducts.map((p) => [`q-${p.id}`, new Map([[p.id, 1]])]));
  return {
    train,
    heldOut: { corpus: heldProducts.map((p) => p.doc), queries: heldProducts.map((p) => ({ id: `q-${p.id}`, text: p.query })), qrels },
  };
}
