import stem = require('wink-porter2-stemmer');
import { checkKeys, expected } from '../util/validate.js';

/**
 * Lucene's default English stop set (EnglishAnalyzer.ENGLISH_STOP_WORDS_SET), the one Anserini's
 * BM25 baselines use, so scores are comparable with published BM25 runs.
 */
export const ENGLISH_STOP_WORDS: readonly string[] = Object.freeze([
  'a', 'an', 'and', 'are', 'as', 'at', 'be', 'but', 'by', 'for', 'if', 'in', 'into', 'is', 'it', 'no', 'not',
  'of', 'on', 'or', 'such', 'that', 'the', 'their', 'then', 'there', 'these', 'they', 'this', 'to', 'was', 'will', 'with',
]);

/** Turns text into index terms. */
export type Analyzer = (text: string) => string[];

/** Options of {@link createEnglishAnalyzer}. */
export interface AnalyzerOptions {
  /** Words dropped after lower-casing; `false` keeps every word. Default {@link ENGLISH_STOP_WORDS}. */
  stopWords?: readonly string[] | false;
  /** Reduce words to their Porter2 (Snowball English) stem. Default true. */
  stem?: boolean;
}

// Runs of letters and digits, with inner apostrophes kept so that possessives can be recognised.
const TOKEN = /[\p{L}\p{N}]+(?:['\u2019][\p{L}\p{N}]+)*/gu;

/**
 * An English analyzer in the spirit of Lucene's EnglishAnalyzer: Unicode NFKC, lower-case,
 * split on anything that is not a letter or digit, drop possessive 's, drop stop words, stem.
 * The stemmer is Porter2 (wink-porter2-stemmer), a refinement of the Porter stemmer Lucene uses,
 * so a few stems differ from Anserini's (e.g. "generously" → "generous").
 *
 * @example createEnglishAnalyzer()("The runners' dog's running fast!") // ['runner', 'dog', 'run', 'fast']
 */
export function createEnglishAnalyzer(options: AnalyzerOptions = {}): Analyzer {
  checkKeys(options, ['stopWords', 'stem'], 'options');
  const stopList = options.stopWords ?? ENGLISH_STOP_WORDS;
  if (stopList !== false && !Array.isArray(stopList)) throw new TypeError(expected('array of strings or false', 'stopWords', stopList));
  const stop = new Set(stopList === false ? [] : stopList.map((w) => w.toLowerCase()));
  const doStem = options.stem ?? true;
  if (typeof doStem !== 'boolean') throw new TypeError(expected('boolean', 'stem', doStem));
  // Stemming dominates analysis time and vocabularies repeat heavily, so stems are memoised.
  const stems = new Map<string, string>();
  return (text: string): string[] => {
    if (typeof text !== 'string') throw new TypeError(expected('string', 'text', text));
    const out: string[] = [];
    for (const match of text.normalize('NFKC').toLowerCase().matchAll(TOKEN)) {
      let word = match[0].replace(/['\u2019]s$/, '').replace(/['\u2019]/g, '');
      if (stop.has(word)) continue;
      if (doStem) {
        let s = stems.get(word);
        if (s === undefined) {
          s = stem(word);
          if (stems.size < 1 << 20) stems.set(word, s);
        }
        word = s;
      }
      if (word.length > 0) out.push(word);
    }
    return out;
  };
}
