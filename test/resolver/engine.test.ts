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
import { capLine, capRdataHex, sleep } from './harness.ts';
import { encodeMessage } from '../../shim/wire/index.ts';
import { waitFor } from '../helpers/wait.ts';
import { controlRequest } from '../../shim/daemon/control/client.ts';

const A = 'fd00:ab::1';
const B1 = 'fd00:ab::10';
const B2 = 'fd00:ab::20';
const PLAIN = 'fd00:ab::99';

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
    `peer AAAA ${B1}`, `peer AAAA ${B2}`, capLine('peer', 300, capRdataHex(B1, [B1, B2])), `plain AAAA ${PLAIN}`,
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

  // "Is this address known not to run shim6?": a name without a record puts its address in the
  // engine's negative cache, and status lists both caches entry by entry.
  assert.match(net.run(a, ['dig', '@127.0.0.1', '-p', '5300', 'plain.example.', 'AAAA', '+time=3', '+tries=1']).stdout, /status: NOERROR/);
  interface EngineCap { positive: Array<{ ulid: string; source: string; ttl: number }>; negative: Array<{ address: string; reason: string; source: string; ttl: number }> }
  let cap: EngineCap | undefined;
  for (let i = 0; i < 100 && !cap?.negative.some((e) => e.address === PLAIN); i++) {
    const st = net.tryRun(a, [process.execPath, BIN, 'status', '--json', '--socket', sockA]);
    if (st.status === 0) cap = (JSON.parse(st.stdout) as { engine: { capability: EngineCap } }).engine.capability;
    await sleep(100);
  }
  // The record's 300 s, or the engine's 1 h once the handshake confirmed the peer.
  const pos = cap?.positive.find((e) => e.ulid === B1);
  assert.ok(pos && pos.source === 'dns' && pos.ttl > 0 && pos.ttl <= 3600, JSON.stringify(cap));
  const neg = cap?.negative.find((e) => e.address === PLAIN);
  assert.ok(neg && neg.reason === 'no-record' && neg.source === 'dns', JSON.stringify(cap));
  assert.ok(neg.ttl > 0 && neg.ttl <= 60, `the zone's negative TTL (SOA MINIMUM 60): ${neg.ttl}`);
  const text = net.run(a, [process.execPath, BIN, 'status', '--socket', sockA]).stdout;
  assert.match(text, new RegExp(`engine capability cache \\(positive, by ULID\\): 1\\n {2}ulid=${B1} source=dns locators=${B1},${B2} ttl=\\d+\\n`));
  assert.match(text, new RegExp(`engine capability cache \\(negative, by peer address\\): \\d+\\n(?: {2}.*\\n)* {2}address=${PLAIN} reason=no-record source=dns ttl=\\d+\\n`));
});

test('the config file\'s replyLimit reaches the engine: a global burst of 3 answers 3 of 10 I1s, off answers all 10', { timeout: 60_000 }, async (t) => {
  if (!needs(t, { root: true, commands: ['ip'] })) return;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'res-limit-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const net = new NetLab(t);
  const a = net.ns('rla');
  const b = net.ns('rlb');
  net.veth(a, 'rla0', b, 'rlb0');
  net.addr(a, 'rla0', `${A}/64`);
  net.addr(b, 'rlb0', `${B1}/64`);
  const targets = [
    { name: 'limited', port: 5533, conf: 'replyLimit: { global: { rate: 0.01, burst: 3 } }\n', sent: 3, limited: 7 },
    { name: 'off', port: 5534, conf: 'replyLimit: off\n', sent: 10, limited: 0 },
  ];
  let log = '';
  for (const [i, x] of targets.entries()) {
    writeFileSync(path.join(dir, `${x.name}.yaml`), x.conf);
    const p = net.spawn(b, [process.execPath, BIN, 'resolver', '--config', path.join(dir, `${x.name}.yaml`), '--listen', `127.0.0.1:${5300 + i}`, '--upstream', '127.0.0.1:9', '--socket', path.join(dir, `${x.name}.sock`), '--shim-port', String(x.port)]);
    p.stderr?.on('data', (d: Buffer) => { log += d.toString(); });
  }
  for (let i = 0; i < 150 && (log.match(/resolver ready/g)?.length ?? 0) < 2; i++) await sleep(100);
  assert.equal(log.match(/resolver ready/g)?.length, 2, log);

  // Ten I1s to each engine from one socket in A; count what comes back.
  const i1s = Array.from({ length: 10 }, (_, k) => Buffer.from(encodeMessage({ type: 'I1', contextTag: 0x100 + k, initiatorNonce: k, options: [] })).toString('hex'));
  const script = `const s=require('dgram').createSocket('udp6');const n={};s.on('message',(m,r)=>{n[r.port]=(n[r.port]||0)+1});` +
    `s.bind(0,()=>{for(const p of [5533,5534])for(const h of ${JSON.stringify(i1s)})s.send(Buffer.from(h,'hex'),p,${JSON.stringify(B1)});` +
    `setTimeout(()=>{console.log(JSON.stringify(n));process.exit(0)},1500)});`;
  const got = JSON.parse(net.run(a, [process.execPath, '-e', script]).stdout) as Record<string, number>;
  for (const x of targets) {
    assert.equal(got[x.port] ?? 0, x.sent, `${x.name}: R1s received`);
    const st = JSON.parse(net.run(b, [process.execPath, BIN, 'status', '--json', '--socket', path.join(dir, `${x.name}.sock`)]).stdout) as { engine: { guard: { replies: { R1: { sent: number; limited: number } } } } };
    assert.deepEqual({ sent: st.engine.guard.replies.R1.sent, limited: st.engine.guard.replies.R1.limited }, { sent: x.sent, limited: x.limited }, x.name);
  }
});
