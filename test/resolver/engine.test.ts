// End to end: a DNS lookup through `shim6 resolver` primes its engine, which completes the
// Shim6 exchange with a second `shim6 resolver` (the peer) before any application packet.
// Two namespaces joined by a veth; Knot and dig run in the client's namespace.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { needs } from '../helpers/prereq.ts';
import { BIN } from '../helpers/cli.ts';
import { NetLab } from '../helpers/netns.ts';
import { capLine, capRdataHex } from './harness.ts';
import { waitFor } from '../helpers/wait.ts';
import { controlRequest } from '../../shim/control/client.ts';

const A = 'fd00:ab::1';
const B1 = 'fd00:ab::10';
const B2 = 'fd00:ab::20';

test('a lookup primes the engine and the context with the peer is established', { timeout: 120_000 }, async (t) => {
  if (!needs(t, { root: true, commands: ['knotd', 'dig', 'ip'] })) return;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'res-e2e-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const net = new NetLab(t);
  const a = net.ns('resa');
  const b = net.ns('resb');
  net.veth(a, 'resa0', b, 'resb0');
  net.addr(a, 'resa0', `${A}/64`);
  // The kernel lists the newest address first; B's engine takes the first as its ULID, which must be the record's.
  net.addr(b, 'resb0', `${B2}/64`);
  net.addr(b, 'resb0', `${B1}/64`);

  // A minimal Knot inside namespace A (the shared helper starts servers in the host namespace).
  const zone = [
    '$ORIGIN example.', '$TTL 300', '@ SOA ns.example. admin.example. 1 3600 600 86400 60', '@ NS ns.example.', 'ns A 127.0.0.1',
    `peer AAAA ${B1}`, `peer AAAA ${B2}`, capLine('peer', 300, capRdataHex(B1, [B1, B2])),
  ].join('\n') + '\n';
  writeFileSync(path.join(dir, 'example.zone'), zone);
  writeFileSync(path.join(dir, 'knot.conf'), [
    'server:', `    rundir: "${dir}"`, '    user: root:root', `    pidfile: "${dir}/knot.pid"`, '    listen: 127.0.0.1@5301',
    'database:', `    storage: "${dir}/db"`, 'zone:', '  - domain: example.', `    file: "${dir}/example.zone"`,
  ].join('\n') + '\n');
  net.spawn(a, ['knotd', '-c', path.join(dir, 'knot.conf')]);

  const logs = { a: '', b: '' };
  const sockA = path.join(dir, 'a.sock');
  const sockB = path.join(dir, 'b.sock');
  const pa = net.spawn(a, [process.execPath, BIN, 'resolver', '--listen', '127.0.0.1:5300', '--upstream', '127.0.0.1:5301', '--socket', sockA, '--log-level', 'debug']);
  const pb = net.spawn(b, [process.execPath, BIN, 'resolver', '--listen', '127.0.0.1:5300', '--upstream', '127.0.0.1:9', '--socket', sockB]);
  pa.stderr?.on('data', (d: Buffer) => { logs.a += d.toString(); });
  pb.stderr?.on('data', (d: Buffer) => { logs.b += d.toString(); });
  await waitFor(() => logs.a.includes('resolver ready') && logs.b.includes('resolver ready'), 'both resolvers ready');
  assert.match(logs.a, new RegExp(`resolver ready.*ulid ${A.replace(/[.]/g, '\\.')}`), logs.a);
  assert.match(logs.b, /resolver ready.*ulid fd00:ab::10/, logs.b);
  await waitFor(() => net.tryRun(a, ['dig', '@127.0.0.1', '-p', '5301', 'example.', 'SOA', '+short', '+time=1', '+tries=1']).stdout.trim() !== '', 'Knot to answer', undefined, 100);

  const r = net.run(a, ['dig', '@127.0.0.1', '-p', '5300', 'peer.example.', 'AAAA', '+time=15', '+tries=1']);
  assert.match(r.stdout, /status: NOERROR/);
  // net.run is synchronous: let the resolver's stderr catch up before looking at it.
  await waitFor(() => /prime name=peer/.test(logs.a), 'the prime in A\'s log');
  assert.match(logs.a, /prime name=peer\.example\. ulid=fd00:ab::10/);

  // The primed engine starts the exchange at once; no application packet is sent. (Status over
  // the control socket from here: a unix socket is a file, reachable from any network namespace.)
  let contexts: Array<{ state: string; peerUlid: string; pair: { peer: string } }> = [];
  await waitFor(async () => {
    const s = await controlRequest(sockA, 'status') as { engine: { contexts: typeof contexts } | null; resolver: { counters: { primes: number } } };
    assert.equal(s.resolver.counters.primes, 1);
    contexts = s.engine?.contexts ?? [];
    return contexts.some((c) => /ESTABLISHED/i.test(c.state));
  }, 'an established context on A', undefined, 100);
  assert.equal(contexts.length, 1, logs.a);
  assert.match(contexts[0]!.state, /ESTABLISHED/i);
  assert.equal(contexts[0]!.peerUlid, B1);
  const peer = JSON.parse(net.run(b, [process.execPath, BIN, 'status', '--json', '--socket', sockB]).stdout) as { engine: { contexts: Array<{ state: string; peerUlid: string }> } };
  assert.equal(peer.engine.contexts[0]?.peerUlid, A, 'the peer holds the context too');
});
