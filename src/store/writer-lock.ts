/**
 * One writer per store directory. The lock is proper-lockfile's: an atomic `mkdir` of
 * `<dir>/.writer.lock` whose mtime the holder refreshes every 5 s, so a lock whose mtime is more
 * than 10 s old is stale (this works across hosts and on network filesystems, where pids mean
 * nothing). Beside it, `<dir>/.writer.owner.json` names the holder (pid, host) for error messages
 * and for faster recovery: a lock whose holder is a process of this host that no longer exists
 * (SIGKILLed, crashed) is taken over at once rather than after 10 s, so a job restarted right
 * after a kill can save.
 *
 * Taking over is "is it stale? then remove it and mkdir": two writers doing that at once could
 * each remove the other's fresh lock. So every acquisition, and every takeover, happens inside a
 * short second lock, `<dir>/.writer-gate.lock`, held only for those few file operations.
 * Readers take no lock: a save never changes the files of the generation a manifest names.
 */
import { hostname } from 'node:os';
import { join } from 'node:path';
import { readFile, rm, rmdir } from 'node:fs/promises';
import lockfile from 'proper-lockfile';
import { SearchR3Error } from '../util/errors.js';
import { writeFileAtomic } from '../util/fs.js';

/** Age (ms) after which a lock whose holder stopped refreshing it is stale; proper-lockfile's default. */
const STALE_MS = 10_000;
// The gate is held for milliseconds; its staleness is proper-lockfile's minimum, and acquirers
// retry for longer than that so a writer killed inside the gate delays the next one only briefly.
const GATE_STALE_MS = 2_000;
const GATE_RETRIES = { retries: 25, factor: 1.5, minTimeout: 10, maxTimeout: 250 };

interface Owner {
  pid: number;
  host: string;
  since: string;
}

/** A held writer lock. */
export interface WriterLock {
  /** Throws ERR_STORE if the lock was lost (its refresh fell more than 10 s behind) since it was taken. */
  assertHeld(): void;
  /** Releases the lock; idempotent. */
  release(): Promise<void>;
}

const ownerPath = (dir: string): string => join(dir, '.writer.owner.json');

async function readOwner(dir: string): Promise<Owner | undefined> {
  try {
    const o = JSON.parse(await readFile(ownerPath(dir), 'utf8')) as Partial<Owner>;
    return typeof o.pid === 'number' && typeof o.host === 'string' ? { pid: o.pid, host: o.host, since: String(o.since) } : undefined;
  } catch {
    return undefined;
  }
}

// A holder on this host whose pid no longer exists. EPERM means the process exists (another user's).
function isDeadLocalHolder(owner: Owner | undefined): boolean {
  if (!owner || owner.host !== hostname() || owner.pid === process.pid) return false;
  try {
    process.kill(owner.pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

function lockedError(dir: string, owner: Owner | undefined, cause: unknown): SearchR3Error {
  const who = owner ? `pid ${owner.pid} on ${owner.host}, since ${owner.since}` : 'a writer that has not yet recorded its pid';
  return new SearchR3Error('ERR_STORE',
    `Store directory ${dir} is being saved by another writer (${who}); one writer per store directory at a time, so wait for that save to finish`,
    { cause });
}

const isLocked = (err: unknown): boolean => (err as NodeJS.ErrnoException).code === 'ELOCKED';

/** How long an ownerless lock may take to go away before its holder counts as dead. */
const OWNERLESS_GRACE = { retries: 8, factor: 1.5, minTimeout: 20, maxTimeout: 250 };

/**
 * A lock with no owner file, seen from inside the gate. A live holder writes its owner file before
 * it leaves the gate and removes it only while releasing, so such a lock is either being released
 * right now (it goes within milliseconds) or was left by a writer killed between those steps
 * (mid-acquisition or mid-release), which would otherwise block the directory for good.
 * Returns 'gone' when it was released meanwhile, 'dead' when it stayed ownerless past the grace.
 */
async function ownerlessLockGone(main: string, options: lockfile.LockOptions): Promise<'gone' | 'dead'> {
  try {
    await (await lockfile.lock(main, { ...options, retries: OWNERLESS_GRACE }))();
    return 'gone';
  } catch (err) {
    if (!isLocked(err)) throw err;
    return 'dead';
  }
}

/**
 * Takes the writer lock of `dir` (which must exist), or throws ERR_STORE naming the directory and
 * the holder. Never waits for a live holder: a second writer fails at once.
 */
export async function lockStoreDirectory(dir: string): Promise<WriterLock> {
  let lost: Error | undefined;
  let releaseGate: () => Promise<void>;
  try {
    releaseGate = await lockfile.lock(join(dir, '.writer-gate'), {
      realpath: false, stale: GATE_STALE_MS, retries: GATE_RETRIES, onCompromised: () => { /* held for milliseconds; the main lock decides */ },
    });
  } catch (err) {
    if (isLocked(err)) throw lockedError(dir, await readOwner(dir), err);
    throw new SearchR3Error('ERR_STORE', `Cannot lock store directory ${dir} for writing (${(err as NodeJS.ErrnoException).code ?? String(err)})`, { cause: err });
  }
  try {
    const main = join(dir, '.writer');
    const options = { realpath: false, stale: STALE_MS, onCompromised: (err: Error) => { lost = err; } };
    let releaseMain: () => Promise<void>;
    try {
      releaseMain = await lockfile.lock(main, options);
    } catch (err) {
      if (!isLocked(err)) throw err;
      const owner = (await readOwner(dir)) ?? (await ownerlessLockGone(main, options));
      if (owner === 'gone') {
        releaseMain = await lockfile.lock(main, options);
      } else {
        if (owner !== 'dead' && !isDeadLocalHolder(owner)) throw lockedError(dir, owner, err);
        // Safe inside the gate: no other acquirer can create a fresh lock between the check and the removal.
        await rmdir(`${main}.lock`);
        releaseMain = await lockfile.lock(main, options);
      }
    }
    const owner: Owner = { pid: process.pid, host: hostname(), since: new Date().toISOString() };
    await writeFileAtomic(ownerPath(dir), `${JSON.stringify(owner)}\n`);
    let released = false;
    return {
      assertHeld() {
        if (lost) {
          throw new SearchR3Error('ERR_STORE',
            `Lost the writer lock of store directory ${dir} (${lost.message}); this save was abandoned and the previous save is intact`, { cause: lost });
        }
      },
      async release() {
        if (released) return;
        released = true;
        await rm(ownerPath(dir), { force: true });
        // A lost lock is no longer ours to remove.
        if (!lost) await releaseMain();
      },
    };
  } catch (err) {
    if (err instanceof SearchR3Error) throw err;
    throw new SearchR3Error('ERR_STORE', `Cannot lock store directory ${dir} for writing (${(err as NodeJS.ErrnoException).code ?? String(err)})`, { cause: err });
  } finally {
    await releaseGate!();
  }
}
