// JSON schemas of the request bodies: fastify validates them before a handler runs, so a wrong
// type or range is a 400 naming the field and a handler only ever sees checked values.

/** Most inputs of one /v1/embeddings request (OpenAI's own limit). */
export const MAX_INPUTS = 2048;
/** Most queries of one /retrieve or /search request. */
export const MAX_QUERIES = 512;
/** Most documents per query. */
export const MAX_TOPK = 1000;

const text = { type: 'string', minLength: 1 } as const;

/** `POST /v1/embeddings`: OpenAI's fields plus the extension fields `input_type`, `mode`, `max_reasoning_tokens`. */
export const EMBEDDINGS_BODY = {
  type: 'object',
  required: ['input'],
  additionalProperties: false,
  properties: {
    // A string or an array of strings; token-id arrays are refused (see README, Serving).
    input: { type: ['string', 'array'], minLength: 1, minItems: 1, maxItems: MAX_INPUTS, items: text },
    model: { type: 'string' },
    encoding_format: { type: 'string', enum: ['float', 'base64'] },
    dimensions: { type: 'integer', minimum: 1 },
    user: { type: 'string' },
    input_type: { type: 'string', enum: ['query', 'document'] },
    mode: { type: 'string', enum: ['direct', 'reason'] },
    max_reasoning_tokens: { type: 'integer', minimum: 1, maximum: 1 << 20 },
  },
} as const;

/** `POST /retrieve`: Search-R1's request. */
export const RETRIEVE_BODY = {
  type: 'object',
  required: ['queries'],
  additionalProperties: false,
  properties: {
    queries: { type: 'array', minItems: 1, maxItems: MAX_QUERIES, items: { type: 'string' } },
    topk: { type: ['integer', 'null'], minimum: 1, maximum: MAX_TOPK },
    return_scores: { type: 'boolean' },
  },
} as const;

/** `POST /search`: our options. */
export const SEARCH_BODY = {
  type: 'object',
  required: ['queries'],
  additionalProperties: false,
  properties: {
    queries: { type: 'array', minItems: 1, maxItems: MAX_QUERIES, items: { type: 'string' } },
    topk: { type: 'integer', minimum: 1, maximum: MAX_TOPK },
    mode: { type: 'string', enum: ['direct', 'reason'] },
    hybrid: { type: 'boolean' },
  },
} as const;

/** The checked body of `POST /v1/embeddings`. */
export interface EmbeddingsBody {
  input: string | string[];
  model?: string;
  encoding_format?: 'float' | 'base64';
  dimensions?: number;
  user?: string;
  input_type?: 'query' | 'document';
  mode?: 'direct' | 'reason';
  max_reasoning_tokens?: number;
}

/** The checked body of `POST /retrieve`. */
export interface RetrieveBody { queries: string[]; topk?: number | null; return_scores?: boolean }

/** The checked body of `POST /search`. */
export interface SearchBody { queries: string[]; topk?: number; mode?: 'direct' | 'reason'; hybrid?: boolean }
