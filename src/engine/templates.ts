import { SearchR3Error } from '../util/errors';
import type { Model } from './model';
import { EMBED_TOKEN_TEXT } from './model';

/**
 * The prompts that turn a chat model into a Search-R3 embedder. Query and document sides use the
 * same shape (system instruction, the text as the user turn, an assistant turn that ends in
 * `<|embed_token|>`), so training (src/train) and inference build identical token sequences.
 */
export interface EmbedTemplate {
  /** System turn for a query embedded directly (the paper's stage-1 form). */
  querySystem: string;
  /** System turn for a document (documents are always embedded directly). */
  documentSystem: string;
  /** System turn for a query the model first reasons about. */
  reasonSystem: string;
  /** Assistant text of the direct form; must end with `<|embed_token|>`. */
  directAssistant: string;
}

export const DEFAULT_EMBED_TEMPLATE: Readonly<EmbedTemplate> = Object.freeze({
  querySystem: 'Represent the user query for retrieving relevant documents.',
  documentSystem: 'Represent the document for retrieval.',
  reasonSystem:
    'Analyse the user query for search: name what it asks for, the likely wording of a passage that answers it, ' +
    `and any intermediate facts it depends on. Be brief. Then output ${EMBED_TOKEN_TEXT}.`,
  directAssistant: `The embedding is ${EMBED_TOKEN_TEXT}`,
});

export type PromptSide = 'query' | 'document' | 'reason';

// Private-use characters: no real text contains them, and they survive the C string boundary.
const SENTINEL = '\uE000SEARCH_R3_USER_TEXT\uE001';

function systemFor(template: EmbedTemplate, side: PromptSide): string {
  return side === 'query' ? template.querySystem : side === 'document' ? template.documentSystem : template.reasonSystem;
}

/**
 * Builds the token ids of an embedding prompt. The template's own text is tokenized with special
 * tokens parsed; the user's text never is, so a text containing `<|im_start|>` or
 * `<|embed_token|>` stays literal text.
 *
 * @example
 * const ids = buildEmbedPrompt(model, DEFAULT_EMBED_TEMPLATE, 'query', 'who wrote Hamlet');
 */
export function buildEmbedPrompt(model: Model, template: EmbedTemplate, side: PromptSide, text: string): Int32Array {
  return fitEmbedPrompt(model, template, side, text, Infinity).ids;
}

/**
 * What happens to a text whose prompt does not fit the token budget: `truncate` (default) keeps
 * the head of the text and cuts its tail, `error` throws ERR_CONTEXT, `skip` leaves the text out.
 * The template's own tokens (system turn, special tokens, `<|embed_token|>`) are never cut.
 */
export type LongTextPolicy = 'truncate' | 'error' | 'skip';

/** A prompt fitted into a budget: its ids, whether the text was cut, and what it needed uncut. */
export interface FittedPrompt {
  ids: Int32Array;
  truncated: boolean;
  /** Tokens the whole prompt needs without cutting. */
  needed: number;
}

/**
 * Builds an embedding prompt of at most `budget` tokens by keeping the head of the user's text;
 * the template part stays whole. `truncated` says whether anything was cut. When even the
 * template alone exceeds the budget, `ids` is the uncut prompt and the caller must refuse it.
 *
 * @example
 * const { ids, truncated } = fitEmbedPrompt(model, DEFAULT_EMBED_TEMPLATE, 'document', longText, 512);
 */
export function fitEmbedPrompt(model: Model, template: EmbedTemplate, side: PromptSide, text: string, budget: number): FittedPrompt {
  const system = systemFor(template, side);
  const rendered = model.applyChatTemplate(
    [{ role: 'system', content: system }, { role: 'user', content: SENTINEL }],
    true,
  ) ?? `${system}\n\n${SENTINEL}\n\n`;
  const at = rendered.indexOf(SENTINEL);
  if (at < 0) throw new SearchR3Error('ERR_MODEL', 'the chat template dropped the user message; pass a template that keeps it');
  const before = rendered.slice(0, at);
  const after = rendered.slice(at + SENTINEL.length) + (side === 'reason' ? '' : template.directAssistant);
  const head = model.tokenize(before, { addSpecial: true, parseSpecial: true });
  const body = model.tokenize(text, { addSpecial: false, parseSpecial: false });
  const tail = model.tokenize(after, { addSpecial: false, parseSpecial: true });
  const needed = head.length + body.length + tail.length;
  const room = budget - head.length - tail.length;
  const keep = needed <= budget || room < 0 ? body : body.subarray(0, room);
  const out = new Int32Array(head.length + keep.length + tail.length);
  out.set(head, 0);
  out.set(keep, head.length);
  out.set(tail, head.length + keep.length);
  return { ids: out, truncated: keep.length < body.length, needed };
}
