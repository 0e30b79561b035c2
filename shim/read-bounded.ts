/**
 * Reading input files with a bound per kind — the zone tools' and the daemon's (its
 * configuration, the HBA parameters and key files it names) — so an endless or huge input
 * (`/dev/zero`, a `$INCLUDE` of it, a runaway inventory, `--config /dev/zero`) costs at most the
 * bound, not all the memory there is: readFileSync reads to the end, whatever that is (12.9 GB
 * before `zone check` with `$INCLUDE /dev/zero` died; `shim6 daemon --config /dev/zero` took
 * 10 GB and never ended).
 *
 * Owns: the bounds (docs/zone-tools.md "Input bounds") and the one read loop
 * that stops at them. Must not know: what the files mean.
 */
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { UsageError } from './errors.ts';

const MIB = 1024 * 1024;

/**
 * The bounds, in octets. Zone files: 32 MiB for a file and its `$INCLUDE`s in
 * all (a 31 MB zone of 1M AAAA records took 1.0 GB to check). Inventories the
 * same (a million hosts is about 70 MB; split it). Key files, HBA parameters
 * and PEM keys: 1 MiB, far above any real one. The daemon's configuration: 16 MiB (a peer
 * is some 100 octets: 100,000 of them fit).
 */
export const READ_BOUNDS = {
  zone: 32 * MIB,
  inventory: 32 * MIB,
  key: 1 * MIB,
  params: 1 * MIB,
  config: 16 * MIB,
} as const;

export type InputKind = keyof typeof READ_BOUNDS;

/**
 * Kinds read only from a regular file (or stdin, `-`): a zone file and its `$INCLUDE`s. A FIFO
 * would block `zone check` until someone writes to it (for ever, in a hostile `$INCLUDE`), a
 * device is no zone.
 */
const REGULAR_ONLY: ReadonlySet<InputKind> = new Set(['zone']);

/** UsageError EINVALID: `file` is a FIFO, a device, a directory…: not read. */
function notRegular(file: string, field: string): UsageError {
  return new UsageError('EINVALID', `${field === '' ? '' : `${field}: `}${JSON.stringify(file)} is not a regular file (a FIFO, a device, a directory…); not read`, field);
}

const KIND_TEXT: Readonly<Record<InputKind, string>> = {
  zone: 'a zone file and its $INCLUDEs, in all',
  inventory: 'an inventory',
  key: 'a key file',
  params: 'an HBA parameters file',
  config: 'a configuration file',
};

/** `33554432` → `32 MiB`. */
export function formatBound(octets: number): string {
  return octets % MIB === 0 ? `${octets / MIB} MiB` : `${octets} octets`;
}

/** The error for an input over its bound: UsageError ETOOLARGE naming `field` (if any), the file and the bound. */
export function tooLarge(file: string, field: string, kind: InputKind): UsageError {
  return new UsageError('ETOOLARGE', `${field === '' ? '' : `${field}: `}${JSON.stringify(file)} is larger than ${formatBound(READ_BOUNDS[kind])}, the bound for ${KIND_TEXT[kind]}; not read`, field);
}

/**
 * The text of `file` (`'-'` or 0: stdin), read in chunks and never more than
 * `limit` octets (default: the kind's bound): one more is ETOOLARGE. File
 * system errors are thrown as they are (the caller words them).
 */
export function readBounded(file: string | 0, field: string, kind: InputKind, limit: number = READ_BOUNDS[kind]): string {
  const stdin = file === '-' || file === 0;
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer, for ever. The
  // check is on what was opened (fstat), so nothing can be swapped in between.
  const fd = stdin ? 0 : openSync(file, REGULAR_ONLY.has(kind) ? constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY : 'r');
  try {
    if (!stdin && REGULAR_ONLY.has(kind) && !fstatSync(fd).isFile()) throw notRegular(file as string, field);
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const want = Math.min(64 * 1024, limit + 1 - total);
      const buf = Buffer.allocUnsafe(want);
      const n = readSync(fd, buf, 0, want, null);
      if (n === 0) break;
      total += n;
      if (total > limit) throw tooLarge(file === 0 ? '-' : file, field, kind);
      chunks.push(n === want ? buf : buf.subarray(0, n));
    }
    return Buffer.concat(chunks, total).toString('utf8');
  } finally {
    if (fd !== 0) closeSync(fd);
  }
}
