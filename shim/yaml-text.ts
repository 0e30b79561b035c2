/**
 * YAML (and JSON) text from outside — config files, key files — parsed with
 * bounds, so a hostile file costs a bounded amount and fails with a message
 * instead of aborting the process: the `yaml` package on V8 can exhaust the
 * regular-expression stack on deeply nested flow collections (a third parse of
 * 100,000 nested `[` in one process aborted with "RegExpCompiler Allocation
 * failed", which nothing can catch). Callers wrap the Error into their own
 * typed error.
 */
import { parse } from 'yaml';

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

/** Parse YAML (a JSON text is YAML too) within the bounds above; throws Error with a message otherwise. */
export function parseYamlBounded(text: string, options: { logLevel?: 'silent' | 'error' | 'warn' } = {}): unknown {
  if (text.length > MAX_TEXT) throw new Error(`longer than ${MAX_TEXT} characters`);
  const depth = flowDepth(text);
  if (depth > MAX_NESTING) throw new Error(`nested ${depth} levels deep (at most ${MAX_NESTING})`);
  return parse(text, { maxAliasCount: 100, ...(options.logLevel !== undefined ? { logLevel: options.logLevel } : {}) });
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
