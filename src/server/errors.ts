// One table from every failure a request can meet to an HTTP status and OpenAI's error shape
// `{error: {message, type, param, code}}`, so clients written for OpenAI read our errors too.
import { SearchR3Error } from '../util/errors';

/** OpenAI's error body. */
export interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

/** A failure with its status, chosen where it is raised (auth, routing, timeouts). */
export class HttpError extends Error {
  readonly status: number;
  readonly type: string;
  readonly code: string | null;
  readonly param: string | null;
  constructor(status: number, message: string, { type = 'invalid_request_error', code = null as string | null, param = null as string | null } = {}) {
    super(message);
    this.name = 'HttpError';
    this.status = status;
    this.type = type;
    this.code = code;
    this.param = param;
  }
}

/** Seconds a client is told to wait after a 503 (the queue drains in about a batch's time). */
export const RETRY_AFTER_SECONDS = 1;

interface ValidationIssue { instancePath: string; message?: string; keyword: string; params: Record<string, unknown> }

/** The field a schema error is about (`input`, `queries[2]`), and a message naming it. */
function describeValidation(issue: ValidationIssue, where: string): { param: string; message: string } {
  const path = issue.instancePath.split('/').filter(Boolean).map((p) => (/^\d+$/.test(p) ? `[${p}]` : `.${p}`)).join('').replace(/^\./, '');
  if (issue.keyword === 'required') {
    const field = String(issue.params.missingProperty);
    return { param: field, message: `missing required field "${field}" in the request ${where}` };
  }
  if (issue.keyword === 'additionalProperties') {
    const field = String(issue.params.additionalProperty);
    return { param: field, message: `unknown field "${field}" in the request ${where}` };
  }
  const param = path || where;
  let message = `${param} ${issue.message ?? 'is invalid'}`;
  if (issue.keyword === 'enum') message += ` (${(issue.params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')})`;
  if (/^input\[\d+\]$/.test(path) && issue.keyword === 'type') message += ': inputs are texts; token-id arrays are not accepted (they would be another tokenizer\'s ids)';
  return { param, message };
}

/** Maps what a handler or fastify threw to a status, the body to send and extra headers. */
export function toErrorResponse(err: unknown): { status: number; body: ErrorBody; headers: Record<string, string> } {
  const reply = (status: number, message: string, type: string, code: string | null, param: string | null = null, headers: Record<string, string> = {}) =>
    ({ status, body: { error: { message, type, param, code } }, headers });
  if (err instanceof HttpError) return reply(err.status, err.message, err.type, err.code, err.param);
  if (err instanceof SearchR3Error) {
    if (err.code === 'ERR_OVERLOADED') return reply(503, err.message, 'server_error', 'overloaded', null, { 'retry-after': String(RETRY_AFTER_SECONDS) });
    if (err.code === 'ERR_CONTEXT') return reply(400, err.message, 'invalid_request_error', 'context_length_exceeded');
    if (err.code === 'ERR_DISPOSED') return reply(503, 'the server is shutting down', 'server_error', 'shutting_down', null, { 'retry-after': String(RETRY_AFTER_SECONDS) });
    return reply(500, err.message, 'server_error', err.code.toLowerCase());
  }
  const e = err as { validation?: ValidationIssue[]; validationContext?: string; statusCode?: number; code?: string; message?: string };
  if (Array.isArray(e.validation) && e.validation.length > 0) {
    const { param, message } = describeValidation(e.validation[0]!, e.validationContext ?? 'body');
    return reply(400, message, 'invalid_request_error', 'invalid_value', param);
  }
  if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return reply(413, `the request body is larger than the server's limit (${e.message})`, 'invalid_request_error', 'body_too_large');
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    return reply(e.statusCode, e.message ?? 'bad request', 'invalid_request_error', e.code ?? null);
  }
  // Checked after fastify's own errors, some of which are RangeErrors with a status (413).
  if (err instanceof TypeError || err instanceof RangeError) return reply(400, err.message, 'invalid_request_error', 'invalid_value');
  return reply(500, 'internal error', 'server_error', 'internal_error');
}
