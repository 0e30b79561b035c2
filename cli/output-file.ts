/**
 * Files the CLI writes where the user says (`shim6 pcap --demo FILE`, `--live FILE`): created
 * mode 0600, since a capture can hold packet contents (--payload), and never through a symbolic
 * link at the path's last component (O_NOFOLLOW): root writing to /tmp/x.pcap must not follow a
 * link another user planted there to a file of root's. An existing regular file is truncated and
 * written, its mode left as it is.
 */
import { closeSync, constants, openSync, writeSync } from 'node:fs';
import { EnvironmentError } from '../shim/errors.ts';

const FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW;

/** Write `data` to `file` (above); a symbolic link at `file` is EOUTPUT (exit 1) and left alone. */
export function writeOutputFile(file: string, data: Uint8Array): void {
  let fd: number;
  try {
    fd = openSync(file, FLAGS, 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ELOOP') {
      throw new EnvironmentError('EOUTPUT', `${file} is a symbolic link: not followed, nothing written; remove it or name another file`, file);
    }
    throw err;
  }
  try {
    for (let off = 0; off < data.length;) off += writeSync(fd, data, off, data.length - off);
  } finally {
    closeSync(fd);
  }
}
