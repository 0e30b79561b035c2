/**
 * A closed or full stdout (`| head -1`, `> /dev/full`) is an 'error' event on process.stdout,
 * which would end the command with a stack trace (for `zone update`, after an update was already
 * applied). guardStdout (main.ts, for every command) makes it the one error line instead, exit 1,
 * saying what was done when the command had done it (noteApplied); later output is dropped
 * (writeStdout).
 */
let applied: string | undefined;
let failed = false;

function onStdoutError(err: NodeJS.ErrnoException): void {
  if (failed) return;
  failed = true;
  const code = typeof err.code === 'string' && /^E[A-Z0-9_]+$/.test(err.code) ? err.code : 'EIO';
  process.stderr.write(`shim6: error ${code}: cannot write to stdout (${err.message})${applied === undefined ? '' : `; ${applied}`}\n`);
  process.exitCode = 1;
}

/** Turn stdout's errors into the one error line (idempotent). */
export function guardStdout(): void {
  if (process.stdout.listeners('error').includes(onStdoutError)) return;
  process.stdout.on('error', onStdoutError);
}

/** Write to stdout unless it already failed. */
export function writeStdout(s: string): void {
  if (!failed) process.stdout.write(s);
}

/** What the command has done that stays done, for a later stdout error to report. */
export function noteApplied(what: string): void {
  applied = what;
}
