/**
 * TSIG key files, in the forms operators already have:
 *   - BIND (`tsig-keygen`, `rndc-confgen`): `key "name" { algorithm hmac-sha256; secret "…"; };`
 *   - nsupdate -y / kdig -y: `[hmac-sha256:]name:secret`
 *   - Knot (`keymgr -t`): YAML `key: [ { id: name, algorithm: hmac-sha256, secret: … } ]`
 * Only hmac-sha256 is accepted (the zone tools sign with nothing else).
 *
 * Owns: parsing those texts into TsigKey. Must not know: DNS messages.
 */
import { parseYamlBounded } from '../shim/yaml-text.ts';
import { UsageError } from '../shim/errors.ts';
import type { TsigKey } from './tsig.ts';
import { nameProblem } from './dns-message.ts';

const B64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** A key as the file spells it, checked only once picked: another key of the file may use an algorithm we do not. */
interface RawKey {
  name: string;
  algorithm: string;
  secret: string;
}

function rawName(name: string): string {
  return (name.endsWith('.') ? name : name + '.').toLowerCase();
}

function makeKey(name: string, algorithm: string, secret: string, source: string): TsigKey {
  const alg = algorithm.toLowerCase().replace(/\.$/, '');
  if (alg !== 'hmac-sha256') {
    throw new UsageError('ETSIG_KEY', `${source}: key ${JSON.stringify(name)} uses algorithm ${JSON.stringify(algorithm)}; only hmac-sha256 is supported`, 'key');
  }
  if (!B64.test(secret) || secret.length % 4 !== 0) {
    throw new UsageError('ETSIG_KEY', `${source}: key ${JSON.stringify(name)} has a secret that is not base64`, 'key');
  }
  const bytes = new Uint8Array(Buffer.from(secret, 'base64'));
  if (bytes.length === 0) throw new UsageError('ETSIG_KEY', `${source}: key ${JSON.stringify(name)} has an empty secret`, 'key');
  if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new UsageError('ETSIG_KEY', `${source}: bad key name ${JSON.stringify(name)}`, 'key');
  // The name is the TSIG RR's owner, signed and sent: it must be a DNS name (labels 1..63 octets, 255 in all).
  const why = nameProblem(name);
  if (why !== undefined) throw new UsageError('ETSIG_KEY', `${source}: bad key name ${JSON.stringify(name)}: ${why}`, 'key');
  return { name: name.endsWith('.') ? name : name + '.', algorithm: 'hmac-sha256', secret: bytes };
}

/**
 * named.conf comments (`/* … *\/`, `// …`, `# …`) outside quoted strings, each
 * replaced by a space: a base64 secret may itself contain `//` (about one random
 * key in a hundred). An unterminated quote or `/*` stays as text.
 * One pass on purpose: a regex alternation with `\/\*[\s\S]*?\*\/` rescans the
 * rest of the text from every `/*` that has no end, quadratic in the file.
 */
function stripBindComments(text: string): string {
  const parts: string[] = [];
  let copied = 0;
  let blockEnds = true; // false once a search for `*/` found none: no later `/*` has one either
  for (let i = 0; i < text.length;) {
    const c = text[i];
    if (c === '"') {
      const close = text.indexOf('"', i + 1);
      i = close < 0 ? i + 1 : close + 1;
      continue;
    }
    let end = -1;
    if (c === '#' || (c === '/' && text[i + 1] === '/')) {
      end = text.indexOf('\n', i);
      if (end < 0) end = text.length;
    } else if (c === '/' && text[i + 1] === '*' && blockEnds) {
      const close = text.indexOf('*/', i + 2);
      if (close < 0) blockEnds = false;
      else end = close + 2;
    }
    if (end < 0) { i++; continue; }
    parts.push(text.slice(copied, i), ' ');
    copied = i = end;
  }
  parts.push(text.slice(copied));
  return parts.join('');
}

function parseBind(text: string, source: string): RawKey[] {
  const keys: RawKey[] = [];
  const stripped = stripBindComments(text);
  // `key NAME {`, then the body up to the first `}` by indexOf. Not one regex
  // /key…\{([^}]*)\}/g: retried after every `key x {` without a `}`, it is quadratic.
  const head = /key\s+"?([^"\s{]+)"?\s*\{/g;
  for (let m = head.exec(stripped); m !== null; m = head.exec(stripped)) {
    const close = stripped.indexOf('}', head.lastIndex);
    if (close < 0) break;
    const body = stripped.slice(head.lastIndex, close);
    head.lastIndex = close + 1;
    const alg = /algorithm\s+"?([^";\s]+)"?\s*;/.exec(body)?.[1];
    const secret = /secret\s+"([^"]+)"\s*;/.exec(body)?.[1];
    if (!alg || !secret) throw new UsageError('ETSIG_KEY', `${source}: key ${JSON.stringify(m[1])} needs both "algorithm" and "secret"`, 'key');
    keys.push({ name: m[1]!, algorithm: alg, secret: secret.replace(/\s+/g, '') });
  }
  return keys;
}

function parseKnotYaml(text: string, source: string): RawKey[] {
  let doc: unknown;
  // Quiet: this is a guess at the format, and yaml's warnings about text that is no YAML only confuse.
  try { doc = parseYamlBounded(text, { logLevel: 'error' }); } catch { return []; }
  const list = (doc as { key?: unknown } | null)?.key;
  if (!Array.isArray(list)) return [];
  return list.map((k: unknown): RawKey => {
    const e = k as { id?: unknown; algorithm?: unknown; secret?: unknown };
    if (typeof e.id !== 'string' || typeof e.algorithm !== 'string' || typeof e.secret !== 'string') {
      throw new UsageError('ETSIG_KEY', `${source}: a knot key entry needs id, algorithm and secret`, 'key');
    }
    return { name: e.id, algorithm: e.algorithm, secret: e.secret };
  });
}

function parseColonForm(text: string): RawKey[] {
  const line = text.split('\n').map((l) => l.trim()).find((l) => l.length > 0 && !l.startsWith('#'));
  if (!line) return [];
  const parts = line.split(':');
  if (parts.length === 2) return [{ name: parts[0]!, algorithm: 'hmac-sha256', secret: parts[1]! }];
  if (parts.length === 3) return [{ name: parts[1]!, algorithm: parts[0]!, secret: parts[2]! }];
  return [];
}

/**
 * Parse a key file's text. `keyName` picks one key when the file holds several.
 * Throws UsageError('ETSIG_KEY') naming `source` when nothing usable is found.
 */
export function parseTsigKeyFile(text: string, source: string, keyName?: string): TsigKey {
  let keys = /\bkey\s+"?[^\s{]+"?\s*\{/.test(text) ? parseBind(text, source) : parseKnotYaml(text, source);
  if (keys.length === 0) keys = parseColonForm(text);
  if (keys.length === 0) {
    throw new UsageError('ETSIG_KEY', `${source}: no TSIG key found (expected BIND 'key "name" { algorithm hmac-sha256; secret "…"; };', 'name:secret', 'hmac-sha256:name:secret' or knot YAML)`, 'key');
  }
  const names = (): string => keys.map((x) => rawName(x.name)).join(', ');
  let picked: RawKey;
  if (keyName !== undefined) {
    const k = keys.find((x) => rawName(x.name) === rawName(keyName));
    if (!k) throw new UsageError('ETSIG_KEY', `${source}: no key named ${JSON.stringify(keyName)} (found ${names()})`, 'key-name');
    picked = k;
  } else if (keys.length > 1) {
    throw new UsageError('ETSIG_KEY', `${source}: holds ${keys.length} keys (${names()}); pick one with --key-name`, 'key-name');
  } else {
    picked = keys[0]!;
  }
  // Only the key used must be usable: the file's other keys (hmac-sha512, …) are for other tools.
  return makeKey(picked.name, picked.algorithm, picked.secret, source);
}
