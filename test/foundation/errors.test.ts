// Errors that mean one thing: every class is a Shim6Error with a stable code,
// and one that crosses a worker-thread boundary (resolver/worker.ts →
// workers.ts) keeps its class, so the CLI's exit status (2 for a command-line
// mistake, 1 for anything else) does not depend on the thread that failed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EnvironmentError, ProtocolError, Shim6Error, UsageError, errorFromData, errorToData } from '../../shim/errors.ts';
import { DnsFormatError } from '../../zone-tools/dns-message.ts';
import { TransportError } from '../../zone-tools/dns-transport.ts';
import { LabError } from '../../lab/topology.ts';
import { WireError } from '../../shim/wire/errors.ts';
import { CacheDataError } from '../../shim/cache/errors.ts';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

import { ROOT } from '../helpers/cli.ts';
/** One code style for every class: errno-like, E and upper case, an underscore only between words. */
const CODE_STYLE = /^E[A-Z0-9]+(_[A-Z0-9]+)*$/;

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sources(p));
    else if (name.endsWith('.ts')) out.push(p);
  }
  return out;
}

test('errors keep their class and code across a structured clone (a worker thread\'s failure)', () => {
  const cases: Shim6Error[] = [new UsageError('ECONFIG', 'bad key', 'listen'), new EnvironmentError('EUDPBIND', 'in use', '/x'), new ProtocolError('EDNS_NOTAUTH', 'no')];
  for (const e of cases) {
    const back = errorFromData(structuredClone(errorToData(e)));
    assert.equal(back.constructor, e.constructor);
    assert.deepEqual([back.code, back.message], [e.code, e.message]);
  }
  assert.equal((errorFromData(errorToData(new UsageError('EINVALID', 'm', 'f'))) as UsageError).field, 'f');
  const plain = errorFromData(errorToData(new RangeError('boom')));
  assert.ok(plain instanceof EnvironmentError && plain.code === 'EWORKER', 'anything else: not a usage error');
});

test('every error class of the project is a Shim6Error with a code', () => {
  for (const e of [new DnsFormatError('x'), new TransportError('ETIMEOUT', 'x'), new LabError('x'), new WireError('ETRUNCATED', 'x'), new CacheDataError('ECACHE_ENTRY', '$', 'x')]) {
    assert.ok(e instanceof Shim6Error, e.constructor.name);
    assert.equal(typeof e.code, 'string');
    assert.equal(e.name, e.constructor.name);
  }
});

test('every error code thrown anywhere in the sources has the one style (E + upper case)', () => {
  // `new SomethingError('CODE'` and template codes such as `EDNS_${rcode}`; every error class takes its code first.
  const thrown = /new ([A-Z][A-Za-z]*Error)\(\s*(['`])([^'`\s]*)\2/g;
  // Built-in errors, and classes with one fixed code that take the message first.
  const skip = new Set(['Error', 'RangeError', 'TypeError', 'SyntaxError', 'AggregateError', 'DnsFormatError', 'LabError']);
  const seen = new Set<string>();
  const bad: string[] = [];
  for (const room of ['shim', 'resolver', 'zone-tools', 'cli', 'lab', 'native']) {
    for (const file of sources(path.join(ROOT, room))) {
      for (const m of readFileSync(file, 'utf8').matchAll(thrown)) {
        if (skip.has(m[1]!)) continue;
        const code = m[3]!.replace(/\$\{[^}]*\}/g, 'X');
        seen.add(code);
        if (!CODE_STYLE.test(code)) bad.push(`${path.relative(ROOT, file)}: ${m[1]} ${m[3]}`);
      }
    }
  }
  assert.ok(seen.size > 40, `the scan found the codes (${seen.size})`);
  assert.deepEqual(bad, [], 'codes in another style');
});
