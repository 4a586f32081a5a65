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
    if (!this.#native) throw new SearchR3Error('ERR_DISPOSED', 'the LoRA adapter was disposed');
    return this.#native;
  }

  /** The adapter's GGUF metadata (scalar values as strings). */
  get metadata(): Record<string, string> {
    return this.native.meta();
  }

  /** @internal */
  onDispose(fn: () => void): void {
    this.#onDispose.push(fn);
  }

  /** Frees the adapter; it must be detached from every session first. Idempotent. */
  dispose(): void {
    if (!this.#native) return;
    const native = this.#native;
    callNativeSync(() => native.dispose());
    this.#native = null;
    for (const fn of this.#onDispose.splice(0)) fn();
  }
}
