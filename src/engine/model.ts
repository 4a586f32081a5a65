import { binding, type NativeModel, type NativeModelMetadata } from '../native';
import { SearchR3Error } from '../util/errors';
import { assertBoolean, assertInteger, assertString, checkKeys, expected } from '../util/validate';
import { checkedGgufPath } from './gguf-path';
import { LoraAdapter } from './lora';
import { callNative, callNativeSync, InFlight } from './native-call';
import { Session, type SessionOptions } from './session';

/** The special token after which the final hidden state is the Search-R3 embedding. */
export const EMBED_TOKEN_TEXT = '<|embed_token|>';

export interface ModelLoadOptions {
  /** Layers to offload to the GPU (CUDA builds); -1 = all. Default 0. */
  gpuLayers?: number;
  /** Memory-map the weights (default true: llama.cpp decides per platform). */
  mmap?: boolean;
  /** Load only the vocabulary (tokenize/detokenize without weights). Default false. */
  vocabOnly?: boolean;
}

export interface ModelInfo extends NativeModelMetadata {
  path: string;
  /** Token id of `<|embed_token|>`, or null when the model lacks it (see `search-r3 add-embed-token`). */
  embedTokenId: number | null;
}

export interface TokenizeOptions {
  /** Add BOS/EOS as the vocabulary asks (default true). */
  addSpecial?: boolean;
  /** Parse special-token text such as `<|im_start|>` into their ids (default false). */
  parseSpecial?: boolean;
}

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

/**
 * A GGUF model loaded with llama.cpp. Owns its weights; sessions and adapters made from it are
 * disposed with it.
 *
 * @example
 * await using model = await Model.load('qwen2.5-0.5b-instruct-embed.gguf');
 * console.log(model.info.architecture, model.info.embedTokenId);
 */
export class Model implements AsyncDisposable {
  #native: NativeModel | null;
  readonly info: ModelInfo;
  readonly #children = new Set<{ dispose(): void }>();
  /** Sessions and adapters being made: the native side holds the model until they are done. */
  readonly #making = new InFlight('model');

  private constructor(native: NativeModel, path: string) {
    this.#native = native;
    const meta = native.metadata();
    this.info = { ...meta, path, embedTokenId: null };
    this.info.embedTokenId = this.findSpecialToken(EMBED_TOKEN_TEXT);
  }

  /**
   * Loads a GGUF file. The file is checked first (a truncated or corrupt GGUF is an ERR_GGUF error,
   * never a crash), then handed to llama.cpp on a worker thread.
   */
  static async load(path: string, options: ModelLoadOptions = {}): Promise<Model> {
    assertString(path, 'path', { nonEmpty: true });
    checkKeys(options, ['gpuLayers', 'mmap', 'vocabOnly'], 'options');
    if (options.gpuLayers !== undefined) assertInteger(options.gpuLayers, 'gpuLayers', -1);
    if (options.mmap !== undefined) assertBoolean(options.mmap, 'mmap');
    if (options.vocabOnly !== undefined) assertBoolean(options.vocabOnly, 'vocabOnly');
    const abs = await checkedGgufPath(path, 'model');
    const native = await callNative(() => binding().loadModel(abs, options));
    return new Model(native, abs);
  }

  /** @internal the native handle; throws ERR_DISPOSED after dispose(). */
  get native(): NativeModel {
    if (!this.#native) throw new SearchR3Error('ERR_DISPOSED', 'the model was disposed');
    return this.#native;
  }

  get disposed(): boolean {
    return this.#native === null;
  }

  /** Text → token ids. */
  tokenize(text: string, options: TokenizeOptions = {}): Int32Array {
    assertString(text, 'text');
    checkKeys(options, ['addSpecial', 'parseSpecial'], 'options');
    return callNativeSync(() => this.native.tokenize(text, options.addSpecial ?? true, options.parseSpecial ?? false));
  }

  /** Token ids → text. Special tokens are dropped unless `renderSpecial` is set. */
  detokenize(tokens: Int32Array | number[], options: { renderSpecial?: boolean } = {}): string {
    checkKeys(options, ['renderSpecial'], 'options');
    const arr = tokens instanceof Int32Array ? tokens : Int32Array.from(tokens);
    const special = options.renderSpecial ?? false;
    return callNativeSync(() => this.native.detokenize(arr, !special, special));
  }

  /** The text of each token (control tokens rendered when `special`). */
  tokenPieces(tokens: Int32Array | number[], special = false): string[] {
    const arr = tokens instanceof Int32Array ? tokens : Int32Array.from(tokens);
    return callNativeSync(() => this.native.tokenPieces(arr, special));
  }

  /** The id of a special token given by its exact text, or null when the vocabulary has none. */
  findSpecialToken(text: string): number | null {
    assertString(text, 'text', { nonEmpty: true });
    const ids = this.tokenize(text, { addSpecial: false, parseSpecial: true });
    if (ids.length !== 1) return null;
    return this.tokenPieces(ids, true)[0] === text ? ids[0]! : null;
  }

  /** A GGUF metadata value as a string, or null. */
  metaValue(key: string): string | null {
    assertString(key, 'key', { nonEmpty: true });
    return this.native.metaValue(key);
  }

  /**
   * Renders messages with the model's chat template (llama.cpp's built-in template support), or
   * null when the model has no template llama.cpp recognises.
   */
  applyChatTemplate(messages: ChatMessage[], addAssistant: boolean): string | null {
    if (!Array.isArray(messages)) throw new TypeError(expected('array of messages', 'messages', messages));
    return callNativeSync(() => this.native.applyChatTemplate(messages, addAssistant));
  }

  /** Opens an inference session (a llama.cpp context with parallel sequences). */
  async createSession(options: SessionOptions = {}): Promise<Session> {
    const session = await this.#making.run(() => Session.create(this, options), (s) => s.dispose());
    this.#children.add(session);
    session.onDispose(() => this.#children.delete(session));
    return session;
  }

  /** Loads a LoRA adapter in llama.cpp's adapter GGUF format for this model. */
  async loadLora(path: string): Promise<LoraAdapter> {
    const adapter = await this.#making.run(() => LoraAdapter.load(this, path), (a) => a.dispose());
    this.#children.add(adapter);
    adapter.onDispose(() => this.#children.delete(adapter));
    return adapter;
  }

  /**
   * Disposes every session and adapter made from this model, then frees the weights. Never throws
   * and is idempotent: a session operation in flight (or a `createSession`/`loadLora` still
   * running) rejects with ERR_DISPOSED, and the weights are freed once that native work has
   * stopped, since a worker thread may still read them. Any later use is an ERR_DISPOSED error.
   */
  dispose(): void {
    if (!this.#native) return;
    const native = this.#native;
    this.#native = null;
    this.#making.dispose();
    const sessions = [...this.#children].filter((c): c is Session => c instanceof Session);
    for (const s of sessions) s.dispose();
    const free = (): void => {
      // Sessions are freed by now, so adapters are detached and the model has no native users.
      for (const child of [...this.#children]) child.dispose();
      callNativeSync(() => native.dispose());
    };
    if (!this.#making.busy && !sessions.some((s) => s.busy)) {
      free();
      return;
    }
    // Deferred: nobody awaits this, so a failure (none is expected once the workers are done)
    // must not become an unhandled rejection that kills the process.
    void Promise.all([this.#making.idle(), ...sessions.map((s) => s.idle())]).then(free).catch(() => undefined);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.dispose();
  }
}
