/**
 * YAML (and JSON) text from outside — config files, key files — parsed with
 * bounds, so a hostile file costs a bounded amount and fails with a message
 * instead of aborting the process: the `yaml` package on V8 can exhaust the
 * regular-expression stack on deeply nested flow collections (a third parse of
 * 100,000 nested `[` in one process aborted with "RegExpCompiler Allocation
 * failed", which nothing can catch). Callers wrap the Error into their own
 * typed error.
 */
import { parse, parseDocument, YAMLError } from 'yaml';

/** Deepest `[` / `{` nesting accepted (real configuration files stay under 10). */
export const MAX_NESTING = 64;
/** Longest text accepted (octets of UTF-16 code units; a config file is a few KB). */
export const MAX_TEXT = 4 * 1024 * 1024;

/** Nesting depth of flow collections in `text`, skipping quoted strings and comments; linear. */
export function flowDepth(text: string): number {
  let depth = 0, max = 0;
  let quote = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quote !== '') {
      if (c === '\\' && quote === '"') i++;
      else if (c === quote) quote = '';
      continue;
    }
    if (c === '"' || c === "'") quote = c;
    else if (c === '#') { const nl = text.indexOf('\n', i); if (nl < 0) break; i = nl; }
    else if (c === '[' || c === '{') { depth++; if (depth > max) max = depth; }
    else if ((c === ']' || c === '}') && depth > 0) depth--;
  }
  return max;
}

/** 1-based line and column of the UTF-16 `offset` in `text` (as editors and the yaml package count). */
export function lineColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1, start = 0;
  for (let nl = text.indexOf('\n'); nl >= 0 && nl < offset; nl = text.indexOf('\n', nl + 1)) {
    line++;
    start = nl + 1;
  }
  return { line, column: offset - start + 1 };
}

/** A syntax error as one line, `line L, column C: what`: CLI errors are one line (cli/errors.ts). */
function syntaxError(text: string, offset: number, what: string): Error {
  const { line, column } = lineColumn(text, Math.max(0, Math.min(offset, text.length)));
  return new Error(`line ${line}, column ${column}: ${what.replace(/\s*\n\s*/g, ' ').trim()}`);
}

/**
 * Parse YAML (a JSON text is YAML too) within the bounds above; throws Error with a one-line
 * message otherwise, `line L, column C: what` for a syntax error (the yaml package's own
 * message spans five lines: the source line and a caret under it).
 */
export function parseYamlBounded(text: string, options: { logLevel?: 'silent' | 'error' | 'warn' } = {}): unknown {
  if (text.length > MAX_TEXT) throw new Error(`longer than ${MAX_TEXT} characters`);
  const depth = flowDepth(text);
  if (depth > MAX_NESTING) throw new Error(`nested ${depth} levels deep (at most ${MAX_NESTING})`);
  try {
    return parse(text, { maxAliasCount: 100, prettyErrors: false, ...(options.logLevel !== undefined ? { logLevel: options.logLevel } : {}) });
  } catch (err) {
    if (err instanceof YAMLError) throw syntaxError(text, err.pos[0], err.message);
    throw err;
  }
}

/**
 * JSON.parse with a one-line message that gives the line and column, as parseYamlBounded's.
 * Node 20 says `at position N` for some errors, and for others quotes the text (newlines
 * and all) without a position: then the yaml package, on a text within the bounds above,
 * is asked where the flow collection breaks.
 */
export function parseJsonText(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    if (!(err instanceof SyntaxError)) throw err;
    const at = / at position (\d+)(?: \(line \d+ column \d+\))?/.exec(err.message);
    if (at) throw syntaxError(text, Number(at[1]), err.message.slice(0, at.index) + err.message.slice(at.index + at[0].length));
    if (/end of JSON input/.test(err.message)) throw syntaxError(text, text.length, err.message);
    const what = err.message.replace(/, "[\s\S]*" is not valid JSON$/, ' in JSON').replace(/\s*\n\s*/g, ' ');
    const yamlAt = text.length <= MAX_TEXT && flowDepth(text) <= MAX_NESTING ? parseDocument(text, { prettyErrors: false }).errors[0]?.pos[0] : undefined;
    throw yamlAt === undefined ? new Error(what) : syntaxError(text, yamlAt, what);
  }
}

/** A value as short, safe text for an error message: never throws, whatever the value's depth or size. */
export function describeValue(v: unknown, max = 80): string {
  let s: string;
  try {
    s = JSON.stringify(v) ?? String(v);
  } catch {
    s = Array.isArray(v) ? '[…]' : typeof v === 'object' && v !== null ? '{…}' : String(v);
  }
  return s.length > max ? `${s.slice(0, max)}…` : s;
}
