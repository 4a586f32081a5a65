import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { validateGguf } from '../gguf/validate';
import { SearchR3Error } from '../util/errors';

/**
 * Resolves a GGUF path a user gave and checks it before native code sees it: it exists, is a
 * non-empty file, and passes validateGguf (so llama.cpp and ggml never abort on it). Errors name
 * it as `label` ("model", "LoRA adapter").
 *
 * @example const abs = await checkedGgufPath('m.gguf', 'model');
 */
export async function checkedGgufPath(path: string, label: string): Promise<string> {
  const abs = resolve(path);
  let st;
  try {
    st = statSync(abs);
  } catch {
    throw new SearchR3Error('ERR_FILE', `${label} file ${path} does not exist`);
  }
  if (st.isDirectory()) throw new SearchR3Error('ERR_FILE', `${label} path ${path} is a directory, expected a .gguf file`);
  if (st.size === 0) throw new SearchR3Error('ERR_GGUF', `${label} file ${path} is empty`);
  await validateGguf(abs);
  return abs;
}
