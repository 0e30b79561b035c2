/**
 * Writing a whole buffer to a file the daemon keeps (resolv.conf, the cache file): a write may
 * take only part of it (a full disk takes what fits, then fails the next write with ENOSPC), so
 * a short count is followed by the rest. Owns that loop; knows nothing of what the files hold.
 */
import { writeSync } from 'node:fs';

/** All of `data` at the start of `fd`, until it is written or writeSync throws (ENOSPC). */
export function writeAllSync(fd: number, data: Uint8Array): void {
  let done = 0;
  while (done < data.length) {
    const n = writeSync(fd, data, done, data.length - done, done);
    if (n <= 0) throw new Error(`wrote ${done} of ${data.length} octets`);
    done += n;
  }
}
