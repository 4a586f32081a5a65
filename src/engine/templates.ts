import { SearchR3Error } from '../util/errors';
import { assertString, checkKeys, expected } from '../util/validate';
import type { Model } from './model';
import { EMBED_TOKEN_TEXT } from './model';

// The released Search-R3 checkpoint's system prompts, verbatim (issue 12).
const SEARCH_R3_0_EMBEDDING =
  'You are a helpful AI assistant. Your task is to analyze input text and create a high-quality semantic vector embedding, ' +
  'which represents key concepts, relationships, and semantic meaning.';
const SEARCH_R3_0_REASONING =
  'You are a helpful AI assistant. Your task is to enrich user input for more effective embedding representation by adding semantic depth.\n\n' +
  'For each input, briefly enhance the content by:\n' +
  '1. Identifying core concepts and their relationships.\n' +
  '2. Including key terminology with essential definitions.\n' +
  '3. Adding contextually relevant synonyms and related terms.\n' +
  '4. Connecting to related topics and common applications without excessive elaboration.\n\n' +
  `To represent the final embedding, you MUST end every response with ${EMBED_TOKEN_TEXT}.`;

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

/** search-r3's own wording, the default of the Embedder, the CLI and both training stages. */
export const DEFAULT_EMBED_TEMPLATE: Readonly<EmbedTemplate> = Object.freeze({
  querySystem: 'Represent the user query for retrieving relevant documents.',
  documentSystem: 'Represent the document for retrieval.',
  reasonSystem:
    'Analyse the user query for search: name what it asks for, the likely wording of a passage that answers it, ' +
    `and any intermediate facts it depends on. Be brief. Then output ${EMBED_TOKEN_TEXT}.`,
  directAssistant: `The embedding is ${EMBED_TOKEN_TEXT}`,
});

/**
 * The two system prompts of the released Search-R3 checkpoint, verbatim, so a converted checkpoint
 * embeds as published. Its embedding prompt serves both direct sides (query and document: the
 * checkpoint has one prompt for every text embedded at once), its reasoning prompt is `reason`
 * mode's. The checkpoint publishes no direct assistant text; a bare `<|embed_token|>` is the
 * shortest response that obeys its rule "end every response with <|embed_token|>".
 */
export const SEARCH_R3_0_TEMPLATE: Readonly<EmbedTemplate> = Object.freeze({
  querySystem: SEARCH_R3_0_EMBEDDING,
  documentSystem: SEARCH_R3_0_EMBEDDING,
  reasonSystem: SEARCH_R3_0_REASONING,
  directAssistant: EMBED_TOKEN_TEXT,
});

/**
 * The named templates: `default` (search-r3's own wording) and `search-r3.0` (the released
 * checkpoint's prompts). Every option that takes a template takes one of these names.
 */
export const EMBED_TEMPLATES: Readonly<Record<string, Readonly<EmbedTemplate>>> = Object.freeze({
  default: DEFAULT_EMBED_TEMPLATE,
  'search-r3.0': SEARCH_R3_0_TEMPLATE,
});

/** The names of {@link EMBED_TEMPLATES}, in table order. */
export const EMBED_TEMPLATE_NAMES: readonly string[] = Object.freeze(Object.keys(EMBED_TEMPLATES));

const TEMPLATE_FIELDS = ['querySystem', 'documentSystem', 'reasonSystem', 'directAssistant'];

/**
 * One template from what a user passes: a name of {@link EMBED_TEMPLATES}, an object whose fields
 * override the default template's, or nothing (the default). An unknown name is a RangeError
 * listing the names; an unknown field or a field that is not a string is a TypeError. `name` is
 * what messages call the argument (default `template`).
 *
 * @example resolveEmbedTemplate('search-r3.0').reasonSystem.endsWith('<|embed_token|>.') // true
 * @example resolveEmbedTemplate({ querySystem: 'Find passages for this question.' }).documentSystem // the default's
 */
export function resolveEmbedTemplate(template: string | Partial<EmbedTemplate> | undefined, name = 'template'): EmbedTemplate {
  if (template === undefined) return { ...DEFAULT_EMBED_TEMPLATE };
  if (typeof template === 'string') {
    const named = Object.hasOwn(EMBED_TEMPLATES, template) ? EMBED_TEMPLATES[template] : undefined;
    if (!named) throw new RangeError(expected(`one of the template names ${EMBED_TEMPLATE_NAMES.join(', ')}`, name, template));
    return { ...named };
  }
  if (typeof template !== 'object' || template === null || Array.isArray(template)) {
    throw new TypeError(expected('a template name or an object of template fields', name, template));
  }
  checkKeys(template, TEMPLATE_FIELDS, name);
  for (const [k, v] of Object.entries(template)) if (v !== undefined) assertString(v, `${name}.${k}`);
  const fields = Object.fromEntries(Object.entries(template).filter(([, v]) => v !== undefined));
  return { ...DEFAULT_EMBED_TEMPLATE, ...fields };
}

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
