/**
 * The offline `shim6 zone` actions: record, hba, hba verify, check. Each takes
 * parsed options, writes to the given streams and returns the exit status, so
 * cli/commands/zone.ts stays wiring only.
 *
 * Owns: what those commands print. Must not know: commander.
 */
import { closeSync, constants, fchmodSync, fsyncSync, lstatSync, openSync, renameSync, rmSync, writeFileSync, type Stats } from 'node:fs';
import { createPublicKey } from 'node:crypto';
import { hbaSizeProblem } from '../shim/engine/local.ts';
import { READ_BOUNDS, readBounded, type InputKind } from '../shim/read-bounded.ts';
import { EnvironmentError, UsageError } from '../shim/errors.ts';
import { PRIVATE_RR_TYPE_MAX, PRIVATE_RR_TYPE_MIN } from '../shim/constants.ts';
import { buildHostRecord, RECORD_FLAGS, type RecordFields, type RecordInput } from './record-input.ts';
import { nameProblem } from './dns-message.ts';
import { hostZoneLines } from './zone-lines.ts';
import { generateHbaParams, parseHbaParams, rsaPublicKeyDer, verifyAgainstParams, type HbaParamsFile } from '../shim/wire/hba-params.ts';
import { checkZoneText, formatProblem, MAX_PROBLEMS } from './zone-check.ts';

export interface Out {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  /** What the command has done that stays done (an applied update), for an error on stdout to report. */
  applied?: (what: string) => void;
}

/**
 * Read a file for option `field`, at most the bound of its `kind` (read-bounded.ts),
 * turning "no such file" into a usage error that names it.
 */
export function readInput(file: string, field: string, kind: InputKind, limit?: number): string {
  try {
    return readBounded(file, field, kind, limit);
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError('EINVALID', `${field}: invalid value ${JSON.stringify(file)}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`, field);
  }
}

/**
 * Write `text` to `file` for option `field` (`--out`): a file that cannot be written (its
 * directory missing, no permission, a directory at the path, a full disk) is EOUTPUT naming the
 * option and the file, not a bare errno, and leaves the file as it was: a regular file (or none)
 * is replaced whole — the text goes to `<file>.<pid>.tmp` beside it, flushed, then renamed over
 * it (keeping an existing file's mode) — so a full disk never leaves a truncated file where the
 * previous one was (an HBA parameters file lost is an HBA set that can never be proven again).
 * Anything else at the path (`/dev/stdout`, a FIFO, a symbolic link) is written in place.
 */
export function writeOutput(file: string, text: string, field: string): void {
  const fail = (e: unknown): never => {
    const err = e as NodeJS.ErrnoException;
    const why = err.code === 'ENOENT' ? 'its directory does not exist'
      : err.code === 'EACCES' || err.code === 'EPERM' ? 'permission denied'
        : err.code === 'EISDIR' ? 'it is a directory'
          : err.message.replace(/^[A-Z]+: /, '');
    throw new EnvironmentError('EOUTPUT', `${field}: cannot write ${JSON.stringify(file)}: ${why}${err.code ? ` (${err.code})` : ''}; nothing written`, field);
  };
  let st: Stats | undefined;
  try { st = lstatSync(file, { throwIfNoEntry: false }); } catch (e) { fail(e); }
  if (st !== undefined && !st.isFile()) {
    try { writeFileSync(file, text); } catch (e) { fail(e); }
    return;
  }
  const tmp = `${file}.${process.pid}.tmp`;
  let fd: number | undefined;
  try {
    fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, st === undefined ? 0o666 : st.mode & 0o7777);
    if (st !== undefined) fchmodSync(fd, st.mode & 0o7777); // the umask narrowed it at the open
    writeFileSync(fd, text); // all of it, or the error (ENOSPC)
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, file);
  } catch (e) {
    if (fd !== undefined) closeSync(fd);
    rmSync(tmp, { force: true });
    fail(e);
  }
}

export function loadHbaParams(file: string | undefined): HbaParamsFile | undefined {
  return file === undefined ? undefined : parseHbaParams(readInput(file, '--hba', 'params'), file);
}

export interface RecordFlags {
  name: string;
  ulid?: string;
  locator?: string[];
  ttl?: string;
  port?: string;
  txt?: boolean;
  hba?: string;
  aaaa?: string;
  rrType?: string;
}

/** `--rr-type`: `65300` or `TYPE65300`, private use only; undefined when not given. */
export function parseRrType(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const m = /^(?:TYPE)?(\d{1,5})$/i.exec(text);
  const n = m ? Number(m[1]) : NaN;
  if (!(n >= PRIVATE_RR_TYPE_MIN && n <= PRIVATE_RR_TYPE_MAX)) {
    throw new UsageError('EINVALID', `--rr-type: invalid value ${JSON.stringify(text)}: must be a private-use type ${PRIVATE_RR_TYPE_MIN}..${PRIVATE_RR_TYPE_MAX} (RFC 6895 §3.1; or TYPEnnn), default 65300`, 'rr-type');
  }
  return n;
}

/** Option values → RecordInput (validates --aaaa and --rr-type). */
export function recordInput(f: RecordFlags, fields: RecordFields = RECORD_FLAGS): RecordInput {
  if (f.aaaa !== undefined && f.aaaa !== 'all' && f.aaaa !== 'ulid') {
    throw new UsageError('EINVALID', `--aaaa: invalid value ${JSON.stringify(f.aaaa)}: must be "all" or "ulid"`, 'aaaa');
  }
  const rrType = parseRrType(f.rrType);
  return {
    name: f.name, ulid: f.ulid, locators: f.locator ?? [], ttl: f.ttl, port: f.port, txt: f.txt,
    hba: loadHbaParams(f.hba), aaaa: f.aaaa as 'all' | 'ulid' | undefined, rrType, fields,
  };
}

/** `zone record`. */
export function runRecord(f: RecordFlags, out: Out): number {
  out.stdout(hostZoneLines(buildHostRecord(recordInput(f))).join('\n') + '\n');
  return 0;
}

export interface HbaFlags {
  prefix?: string[];
  sec?: string;
  key?: string;
  out?: string;
}

/** `zone hba`: generate a set, write PARAMS, print the addresses. */
export function runHbaGenerate(f: HbaFlags, out: Out): number {
  if (!f.out) throw new UsageError('EMISSING', '--out: required: where to write the parameters file', 'out');
  const prefixes = f.prefix ?? [];
  if (prefixes.length === 0) throw new UsageError('EMISSING', '--prefix: required: give one --prefix P/64 per link', 'prefix');
  const sec = f.sec === undefined ? 1 : Number(f.sec);
  if (f.sec !== undefined && !/^[012]$/.test(f.sec)) throw new UsageError('EINVALID', `--sec: invalid value ${JSON.stringify(f.sec)}: must be 0, 1 or 2`, 'sec');
  const publicKey = f.key === undefined ? undefined : rsaPublicKeyDer(readInput(f.key, '--key', 'key'), f.key);
  for (const p of prefixes) {
    if (!/^[0-9a-fA-F:.]+(\/64)?$/.test(p)) throw new UsageError('EINVALID', `--prefix: invalid value ${JSON.stringify(p)}: expected an IPv6 /64 prefix like 2001:db8:1::/64`, 'prefix');
  }
  // The daemon's own bound (its start refuses a larger set, EHBA_PARAMS): refused before the search.
  const key = publicKey === undefined ? undefined : createPublicKey({ key: Buffer.from(publicKey), format: 'der', type: 'spki' });
  const tooMany = hbaSizeProblem(prefixes.length, publicKey, key);
  if (tooMany !== undefined) throw new UsageError('EPREFIX', `--prefix: ${tooMany}; nothing written`, 'prefix');
  let params: HbaParamsFile;
  try {
    params = generateHbaParams({ prefixes, sec, ...(publicKey ? { publicKey, keyFile: f.key! } : {}) });
  } catch (e) {
    if (e instanceof UsageError && e.code === 'EPREFIX') throw new UsageError('EPREFIX', `--prefix: ${e.message}`, 'prefix');
    throw e;
  }
  writeOutput(f.out, JSON.stringify(params, null, 2) + '\n', '--out');
  for (const m of params.members) out.stdout(`${m.address}\n`);
  return 0;
}

/** `zone hba verify ADDR PARAMS`: 0 when the address belongs to the set, else 1. */
export function runHbaVerify(address: string, file: string, out: Out): number {
  const params = parseHbaParams(readInput(file, 'PARAMS', 'params'), file);
  let result: string;
  try { result = verifyAgainstParams(address, params); } catch {
    throw new UsageError('EINVALID', `ADDR: invalid value ${JSON.stringify(address)}: not an IPv6 address`, 'ADDR');
  }
  if (result === 'ok') {
    out.stdout(`${address}: ok, in the HBA set of ${file}\n`);
    return 0;
  }
  out.stdout(`${address}: NOT in the HBA set of ${file} (${result})\n`);
  return 1;
}

export interface CheckFlags {
  origin?: string;
  rrType?: string;
  quiet?: boolean;
}

/**
 * A zone name (`--origin`, `zone show NAME`): no empty label, labels of at most 63
 * octets, at most 255 octets in all (RFC 1035 §2.3.4), no `\DDD` over 255; `.` is
 * the root. Any octet may be in a label (RFC 2181 §11: a zone like
 * `0/25.2.0.192.in-addr.arpa.` is one). UsageError EINVALID naming `field`.
 */
export function checkZoneName(text: string, field: string): void {
  const bad = (why: string): never => { throw new UsageError('EINVALID', `${field}: invalid value ${JSON.stringify(text)}: ${why}`, field.replace(/^--/, '')); };
  if (text === '.') return;
  if (text === '' || /\s/.test(text)) bad('not a zone name');
  const why = nameProblem(text);
  if (why !== undefined) bad(why);
}

/** `zone check FILE…`: every problem as `file:line: what`; 1 when any error. */
export function runCheck(files: string[], f: CheckFlags, out: Out): number {
  const rrType = parseRrType(f.rrType);
  if (f.origin !== undefined) checkZoneName(f.origin, '--origin');
  let errors = 0;
  for (const file of files) {
    // One budget for the file and every $INCLUDE it reads (an $INCLUDE over it is a problem on its line).
    let left: number = READ_BOUNDS.zone;
    const take = (text: string): string => { left -= Buffer.byteLength(text); return text; };
    const res = checkZoneText(take(readInput(file, 'FILE', 'zone')), file, {
      readFile: (p) => take(readBounded(p, '', 'zone', left)),
      ...(f.origin !== undefined ? { origin: f.origin } : {}),
      ...(rrType !== undefined ? { rrType } : {}),
    });
    for (const p of res.problems) out.stdout(formatProblem(p) + '\n');
    if (res.stopped) out.stdout(`${res.stopped.file}:${res.stopped.line}: too many problems: stopped after ${MAX_PROBLEMS} errors; the rest of the zone is not checked\n`);
    if (res.omitted) out.stdout(`${file}: ${res.omitted} more problem(s) not listed (at most ${MAX_PROBLEMS} errors and ${MAX_PROBLEMS} warnings are)\n`);
    const n = res.problems.filter((p) => p.severity === 'error').length;
    errors += n + (res.stopped ? 1 : 0);
    const found = `${res.records} capability record(s), ${res.txts} TXT fallback(s)`;
    const stopped = res.stopped ? `, stopped at ${res.stopped.file}:${res.stopped.line} (too many problems)` : '';
    if (!f.quiet) out.stderr(`${file}: ${found}, ${n === 0 ? 'no problems' : `${n} problem(s)`}${stopped}\n`);
  }
  return errors === 0 ? 0 : 1;
}
