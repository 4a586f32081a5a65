import { binding, type NativeLora } from '../native';
import { SearchR3Error } from '../util/errors';
import { assertString } from '../util/validate';
import { checkedGgufPath } from './gguf-path';
import type { Model } from './model';
import { callNative, callNativeSync } from './native-call';

/**
 * A LoRA adapter (llama.cpp's adapter GGUF: `general.type=adapter`, `adapter.type=lora`) loaded for
 * one model. Attach it to sessions with `session.setLoras([{ adapter, scale }])`.
 *
 * @example
 * const adapter = await model.loadLora('stage1.lora.gguf');
 * session.setLoras([{ adapter, scale: 1 }]);
 */
export class LoraAdapter {
  #native: NativeLora | null;
  readonly path: string;
  readonly model: Model;
  #onDispose: (() => void)[] = [];
  /** Sessions this adapter is attached to (Session.setLoras keeps it current). */
  readonly #holders = new Set<object>();
  #disposing = false;

  private constructor(native: NativeLora, model: Model, path: string) {
    this.#native = native;
    this.model = model;
    this.path = path;
  }

  /** @internal use `model.loadLora(path)`. */
  static async load(model: Model, path: string): Promise<LoraAdapter> {
    assertString(path, 'path', { nonEmpty: true });
    const abs = await checkedGgufPath(path, 'LoRA adapter');
    const native = await callNative(() => binding().loadLora(model.native, abs));
    return new LoraAdapter(native, model, abs);
  }

  /** @internal */
  get native(): NativeLora {
    if (!this.#native || this.#disposing) throw new SearchR3Error('ERR_DISPOSED', 'the LoRA adapter was disposed');
    return this.#native;
  }

  /** True once `dispose()` was called (its memory may still serve sessions it is attached to). */
  get disposed(): boolean {
    return this.#disposing || !this.#native;
  }

  /** @internal `session` now computes with this adapter. */
  heldBy(session: object): void {
    this.#holders.add(session);
  }

  /**
   * @internal `session` no longer uses this adapter once `freed` resolves (at once after a
   * `setLoras`; after its last operation for a disposed session, whose context still holds it).
   */
  releasedBy(session: object, freed: Promise<void> = Promise.resolve()): void {
    if (!this.#holders.delete(session) || !this.#disposing || this.#holders.size > 0) return;
    // Nobody awaits this; a failure must not become an unhandled rejection.
    void freed.then(() => this.#free()).catch(() => undefined);
  }

  /** The adapter's GGUF metadata (scalar values as strings). */
  get metadata(): Record<string, string> {
    return this.native.meta();
  }

  /** @internal */
  onDispose(fn: () => void): void {
    this.#onDispose.push(fn);
  }

  /**
   * Frees the adapter. Never throws and is idempotent. An adapter still attached to sessions keeps
   * serving them unchanged and is freed when the last one detaches it (`setLoras` without it) or is
   * disposed; from the call on, attaching it again or reading its metadata is an ERR_DISPOSED error.
   */
  dispose(): void {
    this.#disposing = true;
    if (this.#holders.size === 0) this.#free();
  }

  #free(): void {
    const native = this.#native;
    if (!native || this.#holders.size > 0) return;
    this.#native = null;
    try {
      callNativeSync(() => native.dispose());
    } finally {
      for (const fn of this.#onDispose.splice(0)) fn();
    }
  }
}
