import { writeViaTemp } from './temp-files';

/**
 * Writes a file so that a crash at any moment leaves either the old or the new content, never a
 * mix: write to a temporary file beside it, fsync, rename over the target, fsync the directory.
 * I/O failures are ERR_FILE errors naming `file` (see {@link writeViaTemp}).
 *
 * @example await writeFileAtomic('bench.json', JSON.stringify(report));
 */
export async function writeFileAtomic(file: string, data: string | Uint8Array): Promise<void> {
  await writeViaTemp(file, (sink) => sink.write(data));
}
