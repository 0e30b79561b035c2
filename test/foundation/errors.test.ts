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

test('errors keep their class and code across a structured clone (a worker thread\'s failure)', () => {
  const cases: Shim6Error[] = [new UsageError('ECONFIG', 'bad key', 'listen'), new EnvironmentError('EUDPBIND', 'in use', '/x'), new ProtocolError('DNS_NOTAUTH', 'no')];
  for (const e of cases) {
    const back = errorFromData(structuredClone(errorToData(e)));
    assert.equal(back.constructor, e.constructor);
    assert.deepEqual([back.code, back.message], [e.code, e.message]);
  }
  assert.equal((errorFromData(errorToData(new UsageError('E', 'm', 'f'))) as UsageError).field, 'f');
  const plain = errorFromData(errorToData(new RangeError('boom')));
  assert.ok(plain instanceof EnvironmentError && plain.code === 'EWORKER', 'anything else: not a usage error');
});

test('every error class of the project is a Shim6Error with a code', () => {
  for (const e of [new DnsFormatError('x'), new TransportError('ETIMEOUT', 'x'), new LabError('x'), new WireError('TRUNCATED', 'x'), new CacheDataError('CACHE_BAD_ENTRY', '$', 'x')]) {
    assert.ok(e instanceof Shim6Error, e.constructor.name);
    assert.equal(typeof e.code, 'string');
    assert.equal(e.name, e.constructor.name);
  }
});
