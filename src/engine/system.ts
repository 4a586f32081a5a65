import { binding } from '../native';
import { assertInteger } from '../util/validate';

/** What the native build supports: CPU features, CUDA, GPU offload. */
export function systemInfo(): ReturnType<ReturnType<typeof binding>['systemInfo']> {
  return binding().systemInfo();
}

/** llama.cpp log verbosity on stderr: 0 none, 1 errors (default), 2 warnings, 3 info, 4 debug. */
export function setLogLevel(level: 0 | 1 | 2 | 3 | 4): void {
  assertInteger(level, 'level', 0, 4);
  binding().setLogLevel(level);
}
