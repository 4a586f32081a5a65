import { assertInteger, assertNumber, checkKeys } from '../util/validate';
import { writeBeir, type BeirDoc, type BeirQuery, type BeirSplit } from './beir';
import type { Qrels } from './trec';
import { ADJECTIVES, DEVICES, PRODUCTS, PROFESSIONS, SIZES, SYLLABLES, TOWN_SUFFIXES, TRAITS, type Pair } from './synthetic-words';

/** What a synthetic query asks and how its answer is reached. */
export type SyntheticKind =
  | 'person' // one hop: "Which doctor was raised in X?" → the person's document
  | 'invention' // one hop: "Who came up with the sun-powered timepiece?" → the invention's document
  | 'town' // one hop: "Which settlement along the Y stream is renowned for ceramics?" → the town's document
  | 'inventor-hometown' // two hops: invention document names the inventor, whose document names the town
  | 'inventor-hometown-product'; // three documents: invention → inventor → town, answer in the town's document

/** A query of the synthetic dataset, with what it needs for evaluation and training. */
export interface SyntheticQuery extends BeirQuery {
  kind: SyntheticKind;
  split: BeirSplit;
  /** The short answer (a name, a town, a product), for exact-match scoring. */
  answer: string;
  /** The document that contains the answer (grade 2 in the qrels). */
  target: string;
  /** Documents on the way to the target (grade 1), in hop order; empty for one-hop queries. */
  bridges: string[];
  /**
   * Training queries only: a reasoning trace for stage 1 (PairRecord.reasoning), what a model that
   * knew the corpus would write before embedding. One-hop queries get the canonical words of their
   * paraphrase, the document's own wording ("doctor" → "a physician who grew up in X"); multi-hop
   * queries get the bridge facts that lead to the target ("the solar clock was devised by Y; Y grew
   * up in Z"). Held-out queries have none: at test time the model writes its own.
   */
  reasoning?: string;
}

/** An in-memory dataset in BEIR's shape; every query is in exactly one split's qrels. */
export interface SyntheticDataset {
  corpus: BeirDoc[];
  queries: SyntheticQuery[];
  qrels: Record<BeirSplit, Qrels>;
}

/** Options of {@link makeSyntheticDataset}; every field has a default. */
export interface SyntheticOptions {
  /** Seed of the generator (unsigned 32-bit integer); the same seed gives the same dataset. Default 1. */
  seed?: number;
  /** Corpus size: about 45% people, 40% inventions, 15% towns. 20–1000 (the word tables' limit), default 300. */
  docs?: number;
  /** Number of queries. Default 200. */
  queries?: number;
  /** Share of two- and three-hop queries, 0–1. Default 0.3. */
  multiHopFraction?: number;
  /** Share of each kind of query that goes to train and to dev; test gets the rest. Default 0.6 / 0.2. */
  trainFraction?: number;
  devFraction?: number;
}

// mulberry32: tiny, fast, and good enough to shuffle tables; it only has to be deterministic.
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function shuffle<T>(items: T[], rand: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

const pick = <T>(items: readonly T[], rand: () => number): T => items[Math.floor(rand() * items.length)]!;
const capital = (s: string): string => s[0]!.toUpperCase() + s.slice(1);
const article = (word: string): string => (/^[aeiou]/.test(word) ? 'an' : 'a');

/** All pairs of two tables' indices, shuffled: unique attribute combinations to hand out. */
function combos(n: number, m: number, rand: () => number): [number, number][] {
  const all: [number, number][] = [];
  for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) all.push([i, j]);
  return shuffle(all, rand);
}

function uniqueNames(count: number, make: () => string): string[] {
  const seen = new Set<string>();
  while (seen.size < count) seen.add(make());
  return [...seen];
}

interface Person { name: string; prof: Pair; town: number; doc: number }
interface Invention { adj: Pair; device: Pair; inventor: number; doc: number }
interface Town { name: string; river: string; product: Pair; doc: number }

function resolve(options: SyntheticOptions | undefined) {
  checkKeys(options, ['seed', 'docs', 'queries', 'multiHopFraction', 'trainFraction', 'devFraction'], 'options');
  const o = { seed: 1, docs: 300, queries: 200, multiHopFraction: 0.3, trainFraction: 0.6, devFraction: 0.2, ...options };
  assertInteger(o.seed, 'options.seed', 0, 0xffffffff);
  assertInteger(o.docs, 'options.docs', 20, 1000);
  assertInteger(o.queries, 'options.queries', 1);
  assertNumber(o.multiHopFraction, 'options.multiHopFraction', 0, 1);
  assertNumber(o.trainFraction, 'options.trainFraction', 0, 1);
  assertNumber(o.devFraction, 'options.devFraction', 0, 1);
  if (o.trainFraction + o.devFraction > 1) {
    throw new RangeError(`Expected trainFraction + devFraction ≤ 1 but received ${o.trainFraction} + ${o.devFraction}`);
  }
  return o;
}

/**
 * Generates a small retrieval benchmark that lexical matching cannot solve on its own.
 *
 * The corpus holds short factual documents about generated people (profession, hometown),
 * inventions (who made them, when) and towns (river, what they are known for). Queries use
 * different words for the same facts — a document says "physician", its query says "doctor"
 * (see synthetic-words.ts) — and a share of them need an inference step: "Where was the creator
 * of the sun-powered timepiece raised?" is answered by the inventor's document, which is only
 * reached through the invention's document (the bridge). Qrels are graded: 2 for the document
 * holding the answer, 1 for bridges. Queries are split train/dev/test per kind, so every split has
 * every kind. Everything follows from `seed`; the same options always give the same dataset.
 *
 * @example
 * const ds = makeSyntheticDataset({ seed: 7 });
 * ds.corpus.length; // 300
 * ds.queries.filter((q) => q.split === 'test' && q.bridges.length > 0); // multi-hop test queries
 */
export function makeSyntheticDataset(options?: SyntheticOptions): SyntheticDataset {
  const o = resolve(options);
  const rand = rng(o.seed);
  const nTowns = Math.max(4, Math.round(o.docs * 0.15));
  const nInventions = Math.round(o.docs * 0.4);
  const nPeople = o.docs - nTowns - nInventions;

  const syllableName = (parts: number) => capital(Array.from({ length: parts }, () => pick(SYLLABLES, rand)).join(''));
  const townNames = uniqueNames(nTowns, () => syllableName(2) + pick(TOWN_SUFFIXES, rand));
  const rivers = uniqueNames(Math.max(3, Math.ceil(nTowns / 6)), () => syllableName(2));
  const townCombos = combos(rivers.length, PRODUCTS.length, rand);
  const towns: Town[] = townNames.map((name, i) => ({ name, river: rivers[townCombos[i]![0]]!, product: PRODUCTS[townCombos[i]![1]]!, doc: -1 }));

  // (profession, town) is unique per person, so a one-hop person query has exactly one answer.
  const personCombos = combos(PROFESSIONS.length, nTowns, rand);
  const personNames = uniqueNames(nPeople, () => `${syllableName(2)} ${syllableName(2)}`);
  const people: Person[] = personNames.map((name, i) => ({ name, prof: PROFESSIONS[personCombos[i]![0]]!, town: personCombos[i]![1], doc: -1 }));

  const inventionCombos = combos(ADJECTIVES.length, DEVICES.length, rand);
  const inventors = shuffle(people.map((_, i) => i), rand);
  const inventions: Invention[] = Array.from({ length: nInventions }, (_, i) => ({
    adj: ADJECTIVES[inventionCombos[i]![0]]!, device: DEVICES[inventionCombos[i]![1]]!, inventor: inventors[i]!, doc: -1,
  }));

  const docs = writeDocs(people, inventions, towns, rand);
  const queries = writeQueries(o, people, inventions, towns, docs, rand);
  const qrels: Record<BeirSplit, Qrels> = { train: new Map(), dev: new Map(), test: new Map() };
  for (const q of queries) {
    const judged = new Map<string, number>([[q.target, 2]]);
    for (const b of q.bridges) judged.set(b, 1);
    qrels[q.split].set(q.id, judged);
  }
  return { corpus: docs, queries, qrels };
}

function writeDocs(people: Person[], inventions: Invention[], towns: Town[], rand: () => number): BeirDoc[] {
  const drafts: { title: string; text: string; owner: { doc: number } }[] = [];
  for (const t of towns) {
    const size = pick(SIZES, rand);
    const text = pick([
      `${t.name} is ${article(size)} ${size} town on the ${t.river} River, known for its ${t.product[0]}.`,
      `Located beside the ${t.river} River, the ${size} town of ${t.name} is famous for ${t.product[0]}.`,
    ], rand);
    drafts.push({ title: t.name, text, owner: t });
  }
  for (const p of people) {
    const [prof] = p.prof;
    const town = towns[p.town]!.name;
    const trait = pick(TRAITS, rand);
    const text = pick([
      `${p.name} works as ${article(prof)} ${prof} and grew up in ${town}. Colleagues call ${p.name} ${trait}.`,
      `${p.name}, ${article(prof)} ${prof} by trade, spent childhood years in ${town} and is known to be ${trait}.`,
    ], rand);
    drafts.push({ title: p.name, text, owner: p });
  }
  for (const inv of inventions) {
    const thing = `${inv.adj[0]} ${inv.device[0]}`;
    const who = people[inv.inventor]!.name;
    const year = 1750 + Math.floor(rand() * 250);
    const text = pick([
      `The ${thing} was devised by ${who} in ${year}.`,
      `${who} built the first ${thing} in ${year}.`,
      `In ${year}, ${who} designed ${article(thing)} ${thing}.`,
    ], rand);
    drafts.push({ title: capital(thing), text, owner: inv });
  }
  // Shuffle so that document ids say nothing about what a document is about.
  const width = String(drafts.length).length;
  return shuffle(drafts, rand).map((d, i) => {
    d.owner.doc = i;
    return { id: `d${String(i).padStart(width, '0')}`, title: d.title, text: d.text };
  });
}

type Draft = Omit<SyntheticQuery, 'id' | 'split'>;

function writeQueries(o: ReturnType<typeof resolve>, people: Person[], inventions: Invention[], towns: Town[], docs: BeirDoc[], rand: () => number): SyntheticQuery[] {
  const id = (owner: { doc: number }) => docs[owner.doc]!.id;
  const thingQ = (inv: Invention) => `${inv.adj[1]} ${inv.device[1]}`;
  const thingDoc = (inv: Invention) => `${inv.adj[0]} ${inv.device[0]}`;
  const nMulti = Math.round(o.queries * o.multiHopFraction);
  const nSingle = o.queries - nMulti;
  const want: Record<SyntheticKind, number> = {
    'inventor-hometown': Math.ceil(nMulti / 2),
    'inventor-hometown-product': Math.floor(nMulti / 2),
    town: Math.min(towns.length, Math.round(nSingle * 0.2)),
    person: 0,
    invention: 0,
  };
  want.person = Math.ceil((nSingle - want.town) / 2);
  want.invention = nSingle - want.town - want.person;
  const have: Record<SyntheticKind, number> = {
    person: people.length, invention: inventions.length, town: towns.length,
    'inventor-hometown': inventions.length, 'inventor-hometown-product': inventions.length,
  };
  for (const kind of Object.keys(want) as SyntheticKind[]) {
    if (want[kind] > have[kind]) {
      throw new RangeError(`Expected at most ${have[kind]} "${kind}" queries for ${docs.length} documents but ${o.queries} queries need ${want[kind]}; use more docs or fewer queries`);
    }
  }

  const byKind: Record<SyntheticKind, Draft[]> = { person: [], invention: [], town: [], 'inventor-hometown': [], 'inventor-hometown-product': [] };
  for (const p of shuffle([...people], rand).slice(0, want.person)) {
    const town = towns[p.town]!.name;
    const text = pick([`Which ${p.prof[1]} was raised in ${town}?`, `Name the ${p.prof[1]} whose hometown is ${town}.`], rand);
    byKind.person.push({ text, kind: 'person', answer: p.name, target: id(p), bridges: [], reasoning: `${article(p.prof[0])} ${p.prof[0]} who grew up in ${town}` });
  }
  for (const inv of shuffle([...inventions], rand).slice(0, want.invention)) {
    const text = pick([`Who came up with the ${thingQ(inv)}?`, `Which person is credited with creating the ${thingQ(inv)}?`], rand);
    byKind.invention.push({ text, kind: 'invention', answer: people[inv.inventor]!.name, target: id(inv), bridges: [], reasoning: `who devised the ${thingDoc(inv)}` });
  }
  for (const t of shuffle([...towns], rand).slice(0, want.town)) {
    const text = pick([`Which settlement along the ${t.river} stream is renowned for ${t.product[1]}?`, `What place by the ${t.river} waterway is celebrated for ${t.product[1]}?`], rand);
    byKind.town.push({ text, kind: 'town', answer: t.name, target: id(t), bridges: [], reasoning: `a town on the ${t.river} River known for its ${t.product[0]}` });
  }
  // Multi-hop queries use distinct inventions, so the two kinds never ask about the same chain.
  const chains = shuffle([...inventions], rand);
  for (const inv of chains.slice(0, want['inventor-hometown'])) {
    const person = people[inv.inventor]!;
    const text = pick([`Where was the creator of the ${thingQ(inv)} raised?`, `Which place is home to whoever made the ${thingQ(inv)}?`], rand);
    const reasoning = `the ${thingDoc(inv)} was devised by ${person.name}; where ${person.name} grew up`;
    byKind['inventor-hometown'].push({ text, kind: 'inventor-hometown', answer: towns[person.town]!.name, target: id(person), bridges: [id(inv)], reasoning });
  }
  for (const inv of chains.slice(want['inventor-hometown'], want['inventor-hometown'] + want['inventor-hometown-product'])) {
    const person = people[inv.inventor]!;
    const town = towns[person.town]!;
    const text = pick([
      `What is the hometown of the maker of the ${thingQ(inv)} renowned for?`,
      `The person behind the ${thingQ(inv)} was raised in a place celebrated for what?`,
    ], rand);
    const reasoning = `the ${thingDoc(inv)} was devised by ${person.name}; ${person.name} grew up in ${town.name}; what ${town.name} is known for`;
    byKind['inventor-hometown-product'].push({ text, kind: 'inventor-hometown-product', answer: town.product[0], target: id(town), bridges: [id(inv), id(person)], reasoning });
  }

  // Split each kind separately so that every split gets its share of every kind.
  const all: SyntheticQuery[] = [];
  for (const kind of Object.keys(byKind) as SyntheticKind[]) {
    const list = byKind[kind];
    const nTrain = Math.round(list.length * o.trainFraction);
    const nDev = Math.round(list.length * o.devFraction);
    list.forEach((q, i) => {
      const split: BeirSplit = i < nTrain ? 'train' : i < nTrain + nDev ? 'dev' : 'test';
      const { reasoning, ...rest } = q;
      all.push(split === 'train' ? { id: '', split, ...rest, reasoning } : { id: '', split, ...rest });
    });
  }
  const width = String(all.length).length;
  return shuffle(all, rand).map((q, i) => ({ ...q, id: `q${String(i).padStart(width, '0')}` }));
}

/**
 * Writes a synthetic dataset in BEIR layout (`corpus.jsonl`, `queries.jsonl` with each query's
 * kind, answer, target, bridges and (training queries) reasoning trace under `metadata`, `qrels/{train,dev,test}.tsv`).
 *
 * @example await writeSyntheticDataset('bench/data/synthetic', makeSyntheticDataset());
 */
export async function writeSyntheticDataset(dir: string, dataset: SyntheticDataset): Promise<void> {
  await writeBeir(dir, {
    corpus: dataset.corpus,
    queries: dataset.queries.map((q) => ({
      id: q.id, text: q.text,
      metadata: { kind: q.kind, split: q.split, answer: q.answer, target: q.target, bridges: q.bridges, ...(q.reasoning === undefined ? {} : { reasoning: q.reasoning }) },
    })),
    qrels: dataset.qrels,
  });
}
