/**
 * How the CLI reports failure: one line on stderr, `shim6: error CODE: message`,
 * and a non-zero exit. Exit status 1 = the input or the operation failed,
 * 2 = the command line itself was wrong (unknown flag, bad value).
 */
import { Shim6Error, UsageError } from '../shim/errors.ts';

export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** A message on one line: a line break inside (a library's message, a quoted text) becomes a space. */
function oneLine(message: string): string {
  return message.replace(/\s*[\r\n]+\s*/g, ' ').trim();
}

/** Format any thrown value as the one-line CLI error, and the exit status it deserves. */
export function describeError(err: unknown): { line: string; exitCode: number } {
  if (err instanceof UsageError) {
    return { line: `shim6: error ${err.code}: ${oneLine(err.message)}`, exitCode: EXIT_USAGE };
  }
  if (err instanceof Shim6Error) {
    return { line: `shim6: error ${err.code}: ${oneLine(err.message)}`, exitCode: EXIT_FAILURE };
  }
  const e = err as { code?: unknown; message?: unknown };
  const code = typeof e?.code === 'string' ? e.code : 'EINTERNAL';
  let message = typeof e?.message === 'string' ? e.message : String(err);
  // Node's system errors begin their message with their code (`ENOENT: no such file or directory,
  // open '…'`): printed once, after `error`.
  if (message.startsWith(`${code}: `)) message = message.slice(code.length + 2);
  return { line: `shim6: error ${code}: ${oneLine(message)}`, exitCode: EXIT_FAILURE };
}

/** Throw a UsageError that names the field and the bad value. */
export function badValue(field: string, value: unknown, why: string): never {
  throw new UsageError('EINVALID', `${field}: invalid value ${JSON.stringify(value)}: ${why}`, field);
}

/**
 * commander's parser of a flag that names a file (`--config`, `--socket`): an empty value
 * (`--config "$CFG"` with CFG unset) is a mistake, never the flag left out (a default) or a port.
 */
export function pathFlag(flag: string, what: string): (v: string) => string {
  return (v) => {
    if (v === '') badValue(flag, v, `expected ${what}`);
    return v;
  };
}
