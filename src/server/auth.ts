// Who may talk to the server: loopback by default, and a bearer token wherever it listens beyond.
import { createHash, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';

/** True for `localhost` and the loopback addresses (127.0.0.0/8, ::1, ::ffff:127.x.y.z). */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h === '::1') return true;
  const v4 = h.startsWith('::ffff:') ? h.slice(7) : h;
  return isIP(v4) === 4 && v4.startsWith('127.');
}

/**
 * A check of `Authorization: Bearer KEY` in constant time: both sides are hashed to 32 bytes
 * first, so neither the key's length nor its prefix leaks through timing.
 */
export function bearerChecker(apiKey: string): (authorization: string | undefined) => boolean {
  const want = createHash('sha256').update(apiKey).digest();
  return (authorization) => {
    const m = /^Bearer\s+(.+)$/i.exec(authorization ?? '');
    const got = createHash('sha256').update(m ? m[1]!.trim() : '').digest();
    return timingSafeEqual(got, want) && m !== null;
  };
}
