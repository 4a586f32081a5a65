// What encoded an index's vectors. Vectors from another model, adapter or prompt live in another
// space: mixing them silently would return nonsense, so a mismatch is refused by name.
import { isDeepStrictEqual } from 'node:util';
import type { Embedder } from '../engine/embedder';
import type { EmbedTemplate } from '../engine/templates';
import { fileIdentity } from '../train/run';
import { SearchR3Error } from '../util/errors';
import { documentTokenBudget } from '../retrieval/encode';

/** A file an index depends on: where it was, and a fingerprint of its bytes (size and a digest of its ends). */
export interface FileRef {
  path: string;
  fingerprint: string;
}

/** What encoded the vectors of an index (every row of the current encoder version). */
export interface EncoderIdentity {
  model: FileRef;
  /** The LoRA adapter applied at scale 1, or null. */
  lora: FileRef | null;
  /** The prompt wording documents were embedded with. */
  template: EmbedTemplate;
  /** Body tokens a document keeps before it is cut. */
  maxDocumentTokens: number;
  /** Vector dimension (the model's n_embd). */
  dim: number;
}

/**
 * The identity of what `embedder` would encode: its model and adapter files fingerprinted (with
 * `fileIdentity`, which reads only their ends), its template and its document budget.
 *
 * @example const id = await encoderIdentity(embedder); id.lora?.path
 */
export async function encoderIdentity(embedder: Embedder): Promise<EncoderIdentity> {
  const model = embedder.model.info.path;
  const lora = embedder.lora?.path ?? null;
  return {
    model: { path: model, fingerprint: await fileIdentity(model) },
    lora: lora === null ? null : { path: lora, fingerprint: await fileIdentity(lora) },
    template: { ...embedder.template },
    maxDocumentTokens: documentTokenBudget(embedder),
    dim: embedder.model.info.nEmbd,
  };
}

const describeFile = (f: FileRef | null): string => (f === null ? 'no adapter' : `${f.path} (${f.fingerprint})`);

/**
 * Why `now` cannot search or extend vectors encoded by `stored`, one sentence per difference; an
 * empty list when they are the same encoder. Paths alone do not count: a model moved elsewhere
 * with the same bytes is the same model.
 */
export function identityDifferences(stored: EncoderIdentity, now: EncoderIdentity): string[] {
  const out: string[] = [];
  if (stored.model.fingerprint !== now.model.fingerprint) out.push(`it was encoded with model ${describeFile(stored.model)}, this one is ${describeFile(now.model)}`);
  if ((stored.lora?.fingerprint ?? null) !== (now.lora?.fingerprint ?? null)) out.push(`it was encoded with ${stored.lora ? `adapter ${describeFile(stored.lora)}` : 'no adapter'}, this one has ${now.lora ? `adapter ${describeFile(now.lora)}` : 'none'}`);
  if (!isDeepStrictEqual(stored.template, now.template)) out.push('its documents were embedded with another prompt template');
  if (stored.maxDocumentTokens !== now.maxDocumentTokens) out.push(`its documents were cut to ${stored.maxDocumentTokens} tokens, this embedder cuts them to ${now.maxDocumentTokens}`);
  if (stored.dim !== now.dim) out.push(`its vectors have ${stored.dim} dimensions, this model's have ${now.dim}`);
  return out;
}

/** ERR_MODEL naming every difference and the way out (re-encoding). */
export function mismatchError(dir: string, differences: string[], remedy: string): SearchR3Error {
  return new SearchR3Error('ERR_MODEL', `document index ${dir} does not match this embedder: ${differences.join('; ')}. ${remedy}`);
}
