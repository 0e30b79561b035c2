/**
 * A reader for RFC 1035 §5 master files, as far as real zones use them:
 * comments, quoted strings, escapes, parentheses spanning lines, blank owners
 * (the previous owner), `@`, relative names, TTL and class in either order,
 * TTL units (1h30m), $ORIGIN, $TTL, $INCLUDE (followed), $GENERATE (skipped,
 * BIND only). Every entry keeps its file and line so checks can point at it.
 *
 * Owns: turning text into entries (owner, ttl, class, type, RDATA tokens).
 * Must not know: what any RDATA means (zone-check.ts reads the ones we own).
 * Never throws on bad input: problems come back as values with their line.
 */
import { readBounded } from '../shim/read-bounded.ts';
import path from 'node:path';

/** One RDATA token; `quoted` tokens had their quotes removed, escapes are kept as written. */
export interface Token {
  text: string;
  quoted: boolean;
  line: number;
}

export interface ZoneEntry {
  file: string;
  /** Line where the entry starts. */
  line: number;
  /** Absolute when an origin is known, else as written. Case kept. */
  owner: string;
  ttl: number | undefined;
  class: string;
  /** Upper case mnemonic (AAAA) or TYPEnnn as written. */
  type: string;
  rdata: Token[];
}

export interface Problem {
  file: string;
  line: number;
  message: string;
  /** Warnings do not make `zone check` fail. */
  severity: 'error' | 'warning';
}

export interface MasterFile {
  entries: ZoneEntry[];
  problems: Problem[];
}

interface LogicalLine {
  line: number;
  blankOwner: boolean;
  tokens: Token[];
}

/**
 * Tokens kept of one logical line (parentheses can make one of a whole file): no RDATA holds
 * more (65,535 octets, as hex split into single digits at most 131,070 tokens). Past it the
 * line is a problem and the rest of its tokens are not kept, so one line costs a bounded memory.
 */
export const MAX_LINE_TOKENS = 140_000;

const DELIMITERS = new Set([' ', '\t', ';', '(', ')', '"']);

/**
 * Split text into logical lines (parentheses joined), tokens with their own line numbers,
 * one logical line at a time: nothing is kept for the lines already read, so the memory
 * is the text and the line being read, however many lines there are.
 */
export function* tokenize(text: string, file: string, problem: (p: Problem) => void): Generator<LogicalLine> {
  let cur: LogicalLine | undefined;
  let depth = 0;
  let parenLine = 0;
  let lineNo = 0;
  const push = (ll: LogicalLine, t: Token): void => {
    if (ll.tokens.length < MAX_LINE_TOKENS) ll.tokens.push(t);
    else if (ll.tokens.length === MAX_LINE_TOKENS) {
      ll.tokens.push(t); // one over: reported once, and no more kept
      problem({ file, line: ll.line, message: `more than ${MAX_LINE_TOKENS} tokens in one record (no RDATA holds that many); the rest are not read`, severity: 'error' });
    }
  };
  for (let start = 0; start <= text.length;) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    const src = text.slice(start, end > start && text[end - 1] === '\r' ? end - 1 : end);
    start = end + 1;
    lineNo++;
    if (!cur) cur = { line: lineNo, blankOwner: src.startsWith(' ') || src.startsWith('\t'), tokens: [] };
    // RFC 1035 §5.1: `\DDD` is one octet. Over 255 it is none: BIND ("bad escape", "syntax
    // error") and Knot ("number is bigger than 8 bits") refuse the zone, so it is a problem here.
    const escape = (at: number): number => {
      if (isDigit(src, at + 1) && isDigit(src, at + 2) && isDigit(src, at + 3) && Number(src.slice(at + 1, at + 4)) > 255) {
        problem({ file, line: lineNo, message: `escape ${src.slice(at, at + 4)} is over 255 (\\DDD is one octet)`, severity: 'error' });
      }
      return 2;
    };
    let i = 0;
    while (i < src.length) {
      const c = src[i]!;
      if (c === ' ' || c === '\t') { i++; continue; }
      if (c === ';') break;
      if (c === '(') { if (depth === 0) parenLine = lineNo; depth++; i++; continue; }
      if (c === ')') {
        if (depth === 0) problem({ file, line: lineNo, message: 'unbalanced ")"', severity: 'error' });
        else depth--;
        i++;
        continue;
      }
      if (c === '"') {
        let j = i + 1;
        // Escapes stay as written (slices, not per-character concatenation: big zones).
        while (j < src.length && src[j] !== '"') j += src[j] === '\\' ? escape(j) : 1;
        if (j >= src.length) problem({ file, line: lineNo, message: 'unterminated quoted string', severity: 'error' });
        push(cur, { text: src.slice(i + 1, Math.min(j, src.length)), quoted: true, line: lineNo });
        i = j + 1;
        continue;
      }
      let j = i;
      while (j < src.length && !DELIMITERS.has(src[j]!)) j += src[j] === '\\' ? escape(j) : 1;
      j = Math.min(j, src.length);
      push(cur, { text: src.slice(i, j), quoted: false, line: lineNo });
      i = j;
    }
    if (depth === 0) {
      const done = cur;
      cur = undefined;
      if (done.tokens.length > 0) yield done;
    }
  }
  if (depth > 0) problem({ file, line: parenLine, message: '"(" is never closed', severity: 'error' });
  if (cur && cur.tokens.length > 0) yield cur;
}

function isDigit(text: string, at: number): boolean {
  const c = text.charCodeAt(at);
  return c >= 0x30 && c <= 0x39;
}

const CLASSES = new Set(['IN', 'CH', 'CS', 'HS']);
const TTL_UNITS: ReadonlyMap<string, number> = new Map([
  ['s', 1], ['m', 60], ['h', 3600], ['d', 86400], ['w', 604800],
  ['S', 1], ['M', 60], ['H', 3600], ['D', 86400], ['W', 604800],
]);

/**
 * BIND TTL syntax: `3600`, `1h30m`, `2d`, `1W2d` — digit runs, each optionally
 * followed by one unit. Undefined when not a TTL.
 * A single pass on purpose: the regex /^(\d+[wdhms]?)+$/ reads the same
 * language but backtracks exponentially on a long digit run that ends badly.
 */
export function parseTtl(text: string): number | undefined {
  const total = ttlSeconds(text);
  // RFC 2181 §8: a TTL is 0..2^31-1; a larger one is no TTL (the line then reports a problem).
  return total === undefined || total > MAX_TTL ? undefined : total;
}

/** RFC 2181 §8: the largest TTL; a 32-bit one above it counts as 0. */
const MAX_TTL = 0x7fff_ffff;

/** The seconds of a TTL token, whatever their number; undefined when it is no TTL (parseTtl's syntax). */
function ttlSeconds(text: string): number | undefined {
  let total = 0;
  let i = 0;
  while (i < text.length) {
    const start = i;
    while (i < text.length && text.charCodeAt(i) >= 0x30 && text.charCodeAt(i) <= 0x39) i++;
    if (i === start) return undefined;
    const unit = i < text.length ? TTL_UNITS.get(text[i]!) : 1;
    if (unit === undefined) return undefined;
    total += Number(text.slice(start, i)) * unit;
    if (i < text.length) i++;
  }
  return i === 0 ? undefined : total;
}

/**
 * A record's or `$TTL`'s TTL token as servers load it: over 2^31-1 it is 0 (RFC 2181 §8; BIND
 * "setting TTL to 0"; Knot keeps it, readers take it as 0), a warning; over 32 bits both refuse
 * the zone, an error. Undefined when the token is no TTL; `ttl` is undefined after the error.
 */
function readTtl(text: string, line: number, file: string, res: ParseSink): { ttl: number | undefined } | undefined {
  const seconds = ttlSeconds(text);
  if (seconds === undefined) return undefined;
  if (seconds <= MAX_TTL) return { ttl: seconds };
  if (seconds > 0xffff_ffff) {
    res.problem({ file, line, message: `TTL ${text} does not fit in 32 bits (BIND and Knot refuse the zone)`, severity: 'error' });
    return { ttl: undefined };
  }
  res.problem({ file, line, message: `TTL ${text} is over ${MAX_TTL} (RFC 2181 §8): BIND loads it as 0, readers take it as 0`, severity: 'warning' });
  return { ttl: 0 };
}

/** `name` relative to `origin` → absolute (if an origin is known). `@` is the origin. */
export function absoluteName(name: string, origin: string | undefined): string {
  if (name === '@') return origin ?? '@';
  if (name.endsWith('.') && !name.endsWith('\\.')) return name;
  if (origin === undefined) return name;
  return origin === '.' ? `${name}.` : `${name}.${origin}`;
}

function isClass(t: string): boolean {
  return CLASSES.has(t.toUpperCase()) || /^CLASS\d+$/i.test(t);
}

/**
 * Limits of ours on $INCLUDE (RFC 1035 sets none). Without the count, a few
 * files that each include the next several times fan out to the power of the
 * depth; a file including itself (or an ancestor) is refused outright.
 */
const MAX_INCLUDE_DEPTH = 8;
const MAX_INCLUDES = 10_000;

interface ParseState {
  origin: string | undefined;
  defaultTtl: number | undefined;
  lastTtl: number | undefined;
  lastOwner: string | undefined;
  /** The files being read, outermost first (resolved paths). */
  including: string[];
  /** $INCLUDEs followed so far in this parse. */
  includes: number;
}

export interface ParseOptions {
  /** The zone's origin when the file has no $ORIGIN (like named-checkzone's zone argument). */
  origin?: string;
  /** For $INCLUDE; default reads the file system. */
  readFile?: (p: string) => string;
}

/** Where readMasterFile hands what it reads, as it reads it. */
export interface ParseSink {
  entry(e: ZoneEntry): void;
  problem(p: Problem): void;
  /** True once nothing more is wanted (too many problems): the reader stops at the next line. */
  stopped(): boolean;
}

/**
 * Read master-file text into `sink`, one entry or problem at a time (nothing is kept here:
 * the caller keeps what it needs). `file` names it in problems and resolves $INCLUDE.
 */
export function readMasterFile(text: string, file: string, sink: ParseSink, opts: ParseOptions = {}): void {
  const origin = opts.origin === undefined ? undefined : opts.origin.endsWith('.') ? opts.origin : opts.origin + '.';
  const state: ParseState = { origin, defaultTtl: undefined, lastTtl: undefined, lastOwner: undefined, including: [path.resolve(file)], includes: 0 };
  parseInto(text, file, state, sink, opts.readFile ?? ((p) => readBounded(p, '', 'zone')));
}

/** Parse master-file text, every entry and problem in memory (readMasterFile does it in bounded memory). */
export function parseMasterFile(text: string, file: string, opts: ParseOptions = {}): MasterFile {
  const result: MasterFile = { entries: [], problems: [] };
  readMasterFile(text, file, { entry: (e) => result.entries.push(e), problem: (p) => result.problems.push(p), stopped: () => false }, opts);
  return result;
}

function parseInto(text: string, file: string, st: ParseState, res: ParseSink, readFile: (p: string) => string): void {
  const problem = (line: number, message: string): void => { res.problem({ file, line, message, severity: 'error' }); };
  for (const ll of tokenize(text, file, (p) => res.problem(p))) {
    if (res.stopped()) return;
    const first = ll.tokens[0]!;
    if (!ll.blankOwner && first.text.startsWith('$') && !first.quoted) {
      directive(ll, file, st, res, readFile);
      continue;
    }
    let k = 0;
    let owner: string;
    if (ll.blankOwner) {
      if (st.lastOwner === undefined) { problem(ll.line, 'record with a blank owner before any owner was given'); continue; }
      owner = st.lastOwner;
    } else {
      owner = absoluteName(first.text, st.origin);
      k = 1;
    }
    st.lastOwner = owner;
    let ttl: number | undefined;
    let ttlGiven = false;
    let cls = 'IN';
    for (let n = 0; n < 2 && k < ll.tokens.length; n++) {
      const t = ll.tokens[k]!.text;
      const asTtl = ttlGiven ? undefined : readTtl(t, ll.line, file, res);
      if (asTtl !== undefined) { ttl = asTtl.ttl; ttlGiven = true; k++; continue; }
      if (isClass(t)) { cls = t.toUpperCase(); k++; continue; }
      break;
    }
    const typeTok = ll.tokens[k];
    if (!typeTok || !/^[A-Za-z][A-Za-z0-9-]*$/.test(typeTok.text)) {
      problem(ll.line, typeTok ? `expected a record type, got ${JSON.stringify(typeTok.text)}` : 'record has no type');
      continue;
    }
    const type = typeTok.text.toUpperCase();
    if (ttl === undefined) ttl = st.defaultTtl ?? st.lastTtl;
    else st.lastTtl = ttl;
    if (type === 'SOA' && st.defaultTtl === undefined && ttl === undefined) {
      const min = parseTtl(ll.tokens[k + 7]?.text ?? '');
      ttl = min;
    }
    st.lastTtl = ttl;
    res.entry({ file, line: ll.line, owner, ttl, class: cls, type, rdata: ll.tokens.slice(k + 1) });
  }
}

function directive(ll: LogicalLine, file: string, st: ParseState, res: ParseSink, readFile: (p: string) => string): void {
  const [d, a, b] = ll.tokens;
  const problem = (message: string): void => { res.problem({ file, line: ll.line, message, severity: 'error' }); };
  switch (d!.text.toUpperCase()) {
    case '$ORIGIN':
      if (!a) return problem('$ORIGIN needs a name');
      st.origin = absoluteName(a.text, st.origin);
      if (!st.origin.endsWith('.')) problem(`$ORIGIN ${a.text} is relative and no origin is known`);
      return;
    case '$TTL': {
      const ttl = a ? readTtl(a.text, ll.line, file, res) : undefined;
      if (ttl === undefined) return problem(`$TTL needs a TTL, got ${JSON.stringify(a?.text ?? '')}`);
      if (ttl.ttl !== undefined) st.defaultTtl = ttl.ttl;
      return;
    }
    case '$INCLUDE': {
      if (!a) return problem('$INCLUDE needs a file name');
      if (st.including.length > MAX_INCLUDE_DEPTH) return problem('$INCLUDE nested too deeply');
      const p = path.isAbsolute(a.text) ? a.text : path.join(path.dirname(file), a.text);
      if (st.including.includes(path.resolve(p))) return problem(`$INCLUDE ${a.text}: includes a file that is being read (a loop)`);
      if (st.includes >= MAX_INCLUDES) return problem(`$INCLUDE ${a.text}: more than ${MAX_INCLUDES} $INCLUDEs in one zone; not read`);
      st.includes++;
      let text: string;
      try { text = readFile(p); } catch (e) { return problem(`$INCLUDE ${a.text}: ${(e as Error).message}`); }
      // RFC 1035 §5.1: the included file starts with the given (or current) origin; ours is restored after.
      const saved = { origin: st.origin, lastOwner: st.lastOwner };
      if (b) st.origin = absoluteName(b.text, st.origin);
      st.including.push(path.resolve(p));
      parseInto(text, p, st, res, readFile);
      st.including.pop();
      st.origin = saved.origin;
      st.lastOwner = saved.lastOwner;
      return;
    }
    case '$GENERATE':
      res.problem({ file, line: ll.line, message: '$GENERATE is not expanded (BIND extension); its records are not checked', severity: 'warning' });
      return;
    default:
      return problem(`unknown directive ${d!.text}`);
  }
}

/**
 * RFC 1035 §5.1 escapes in a token (`\X`, `\DDD`) → octets; other characters as UTF-8.
 * Undefined for a `\DDD` over 255 (no octet; tokenize reports it on its line).
 */
export function unescapeToken(text: string): Uint8Array | undefined {
  if (!text.includes('\\')) return new Uint8Array(Buffer.from(text, 'utf8'));
  // Pieces joined once at the end: a run of plain text may be hundreds of thousands of characters,
  // too many to spread as arguments.
  const pieces: Buffer[] = [];
  let plain = 0;
  for (let i = 0; i < text.length; i++) {
    if (text[i] !== '\\' || i + 1 >= text.length) continue;
    pieces.push(Buffer.from(text.slice(plain, i), 'utf8'));
    const d = text.slice(i + 1, i + 4);
    if (/^\d{3}$/.test(d)) {
      if (Number(d) > 255) return undefined;
      pieces.push(Buffer.of(Number(d)));
      i += 3;
    } else {
      const cp = text.codePointAt(i + 1)!;
      pieces.push(Buffer.from(String.fromCodePoint(cp), 'utf8'));
      i += cp > 0xffff ? 2 : 1;
    }
    plain = i + 1;
  }
  pieces.push(Buffer.from(text.slice(plain), 'utf8'));
  return new Uint8Array(Buffer.concat(pieces));
}
