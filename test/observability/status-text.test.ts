// `shim6 status` as text (wg show style) and the --json schema: the text of a
// reply has one block per peer with the fields people look for, no JSON and no
// epoch numbers; docs/status.md documents every key of the schema; an engine
// that really ran (two engines in memory) gives a reply that keeps the schema.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { formatStatus, PEER_BLOCKS_MAX } from '../../cli/commands/status.ts';
import { STATUS_KEYS, STATUS_SCHEMA_VERSION, schemaProblems } from '../../shim/daemon/status-schema.ts';
import { formatAgo, formatBytes } from '../../shim/daemon/status-view.ts';
import { hostPort } from '../../shim/log.ts';
import { newCounters } from '../../resolver/counters.ts';
import { ROOT } from '../helpers/cli.ts';
import { MessageType } from '../../shim/constants.ts';
import { configuredPair, sendShim } from '../sim/shim-hosts.ts';
import type { Millis } from '../../shim/time.ts';

const A = '2001:db8:a::1';
const B = '2001:db8:b::1';
const B2 = '2001:db8:c::1';

const NO_MESSAGES = Object.fromEntries(Object.keys(MessageType).map((k) => [k, 0]));

const REPLY = {
  schemaVersion: 1,
  daemon: {
    pid: 42, uptimeSeconds: 3725, tun: 'shim6', tunPersistent: false, port: 5533, profile: 'rfc', routed: [B],
    locators: [{ address: A, ifname: 'eth0', up: true }, { address: '2001:db8:a:2::1', ifname: 'eth1', up: false }],
    stats: { udpIn: 10, udpOut: 11, tunIn: 12, tunOut: 13, noContext: 0, notIpv6: 0, drops: { 'no-context': 2 }, prompts: 1 },
    events: [{ t: 1764000000000, kind: 'context-established' }], peers: [],
  },
  engine: {
    contexts: [{
      state: 'ESTABLISHED', localUlid: A, peerUlid: B, ulidProof: 'hba', contextTag: 1, peerContextTag: 2, pair: { local: A, peer: B2 }, reap: 'Operational',
      peerLocators: [{ address: B, verified: true, probed: true, flags: 0 }, { address: B2, verified: true, probed: false, flags: 0 }], timers: { Idle: 1764000000000 },
      traffic: { packetsIn: 1000, bytesIn: 1536 * 1024, packetsOut: 900, bytesOut: 2048 }, lastReceivedAgoMs: 3200, rehomings: 2,
      lastRehome: { agoMs: 125_000, cause: 'send-timeout', old: { local: A, peer: B }, new: { local: A, peer: B2 } },
    }],
    caches: { positive: 1, negative: 0 }, localGeneration: 1,
    guard: { ulidUnproven: 0, ulidIsLocal: 0, contextLimit: 0, replies: { R1: { sent: 1, limited: 0, oversize: 0 }, R1bis: { sent: 0, limited: 0, oversize: 0 }, Error: { sent: 0, limited: 0, oversize: 0 }, R2: { sent: 0, limited: 0, oversize: 0 } }, probeReplies: { sent: 3, limited: 2, trimmed: 1, portPinned: 0 }, cga: { verified: 2, cached: 5, limited: 0, badSignature: 0, keyNotRsa: 0, keyTooShort: 0, keyTooLong: 0, keyBadExponent: 1 },
      knownPeers: { peers: 3, asked: 4, updates: 4, replies: 12, verifications: 1, probeReplies: 5, primed: 2 } },
    messages: { sent: { ...NO_MESSAGES, I1: 1, Probe: 4 }, received: { ...NO_MESSAGES, R1: 1 } }, rehomings: { 'send-timeout': 2 },
    capability: { positive: [{ ulid: B, source: 'dns', locators: [B, B2], ttl: 100 }], negative: [] },
  },
  resolver: {
    listen: [{ host: '::1', port: 53 }, { host: '127.0.0.53', port: 53 }], udp: 'native', uptimeSeconds: 3700, counters: { ...newCounters(), queries: 5 },
    cache: { entries: 3, bytes: 900, maxEntries: 100, maxBytes: 1 << 20, inflight: 0 },
    upstreams: [{ host: '2001:db8::53', port: 53, sent: 4, answered: 4, timeouts: 0, failures: 0, rttMs: 1.25, rttVarMs: 0.5, rttBuckets: [4], rttSumMs: 5, caseMismatches: 0, down: false, caseFallback: false }],
    tcp: { connections: 0, maxConnections: 100 },
    capability: { enabled: true, positive: [{ name: 'b.example.', source: 'dns', ttl: 100, primed: true, ulid: B, locators: [B, B2] }], negative: [] },
  },
};

test('status text: one block per peer like wg show, resolver and caches after, no JSON and no epoch numbers', () => {
  const text = formatStatus(REPLY as never);
  const block = text.slice(text.indexOf('peer: b.example.'), text.indexOf('\n\n', text.indexOf('peer: b.example.')));
  assert.match(block, new RegExp(`^peer: b\\.example\\.\\n {2}ulid: ${B}\\n`));
  assert.match(block, /state: ESTABLISHED, REAP Operational, ULID proven by hba/);
  assert.match(block, new RegExp(`current pair: ${A} -> ${B2}`));
  assert.match(block, new RegExp(`locators: ${B} \\(verified, probed\\); ${B2} \\(verified, not probed, current\\)`));
  assert.match(block, /last received: 3 s ago/);
  assert.match(block, /transfer: 1\.50 MiB received, 2\.00 KiB sent \(1000 \/ 900 packets\)/);
  assert.match(block, new RegExp(`last re-homing: 2 min 5 s ago, send-timeout: ${A} -> ${B} to ${A} -> ${B2} \\(2 in all\\)`));
  assert.ok(text.indexOf('daemon: pid 42, up 1 h 2 min') === 0, text);
  assert.ok(text.indexOf('peer: ') < text.indexOf('resolver: listening'), 'peers before the resolver');
  assert.match(text, /resolver: listening on \[::1\]:53, 127\.0\.0\.53:53/);
  assert.match(text, /upstream \[2001:db8::53\]:53: up, rtt 1\.25 ms/);
  assert.match(text, /local locators: 2001:db8:a::1 on eth0 \(up\), 2001:db8:a:2::1 on eth1 \(down\)/);
  assert.match(text, /re-homings: send-timeout 2/);
  assert.match(text, /known peers: 3 \(asked 4 times under a flood, set 4 times\); from their reserve 12 replies, 1 verifications, 5 probe answers; 2 addresses of primed peers/);
  assert.doesNotMatch(text, /[{}"]/, 'no JSON in the text');
  assert.doesNotMatch(text, /\b1[6-9]\d{8,11}\b/, 'no epoch seconds or milliseconds');
});

test('a peer keeps the name that primed it after the resolver\'s entry is gone (the record\'s TTL ran out, the context lives on)', () => {
  const gone = { ...REPLY, resolver: { ...REPLY.resolver, capability: { enabled: true, positive: [], negative: [] } } };
  assert.match(formatStatus(gone as never), new RegExp(`peer: \\(no name\\)\\n {2}ulid: ${B}`), 'without it: no name');
  const primed = { ...gone, daemon: { ...gone.daemon, primedNames: [{ name: 'b.example.', ulid: B }] } };
  assert.match(formatStatus(primed as never), new RegExp(`peer: b\\.example\\.\\n {2}ulid: ${B}`));
  assert.deepEqual(schemaProblems(primed), []);
});

test('formatters: durations, octets, [v6]:port', () => {
  assert.equal(formatAgo(850), '850 ms ago');
  assert.equal(formatAgo(3000), '3 s ago');
  assert.equal(formatAgo(undefined), 'never');
  assert.equal(formatAgo(90_061_000), '1 d 1 h ago');
  assert.equal(formatBytes(512), '512 B');
  assert.equal(formatBytes(1536), '1.50 KiB');
  assert.equal(hostPort('::1', 9533), '[::1]:9533');
  assert.equal(hostPort('127.0.0.1', 53), '127.0.0.1:53');
});

test('docs/status.md documents every key of the schema, and the checker finds a missing one', () => {
  const doc = readFileSync(path.join(ROOT, 'docs/status.md'), 'utf8');
  assert.match(doc, new RegExp(`schemaVersion.{0,40}${STATUS_SCHEMA_VERSION}`));
  for (const [where, keys] of Object.entries(STATUS_KEYS)) {
    if (where !== '') assert.ok(doc.includes(`\`${where}\``), `docs/status.md names the object ${where}`);
    for (const k of keys) assert.ok(doc.includes(`\`${k}\``), `docs/status.md documents ${where ? `${where}.` : ''}${k}`);
  }
  assert.deepEqual(schemaProblems(REPLY), []);
  const broken = structuredClone(REPLY) as { engine: { contexts: Array<Record<string, unknown>> } };
  delete broken.engine.contexts[0]!.traffic;
  assert.deepEqual(schemaProblems(broken), ['engine.contexts[].traffic']);
});

test('a real engine\'s status (two engines, a context, a re-homing) keeps the schema and fills the peer block', () => {
  // test/engine/rehome.test.ts's black hole: payload both ways, then the current pair drops everything.
  const { sim, a, b } = configuredPair(21);
  const traffic = (until: number): void => {
    while (sim.now < until) { sendShim(sim, a, b); sendShim(sim, b, a); sim.runFor(50); }
  };
  traffic(1000);
  sim.setLink(a.ulid, b.ulid, { blackhole: true }, 'forward');
  sim.setLink(b.ulid, a.ulid, { blackhole: true }, 'forward');
  traffic(sim.now + 2000);
  const st = a.engine.status(sim.now as Millis);
  const reply = { schemaVersion: 1, engine: st, resolver: null };
  assert.deepEqual(schemaProblems(reply), []);
  const c = st.contexts[0]!;
  assert.equal(c.state, 'ESTABLISHED');
  assert.ok(c.traffic.packetsOut > 0 && c.traffic.bytesOut > 0, JSON.stringify(c.traffic));
  assert.ok(c.traffic.packetsIn > 0, JSON.stringify(c.traffic));
  assert.ok(c.lastReceivedAgoMs !== undefined);
  assert.equal(c.rehomings, 1);
  assert.equal(c.lastRehome?.cause, 'send-timeout');
  assert.equal(st.rehomings['send-timeout'], 1);
  assert.ok((st.messages.sent.Probe ?? 0) > 0 && (st.messages.sent.I1 ?? 0) === 1 && (st.messages.received.R1 ?? 0) === 1, JSON.stringify(st.messages));
  const text = formatStatus(reply as never);
  assert.match(text, /last re-homing: .* ago, send-timeout: /);
});

test('status text with thousands of contexts: at most PEER_BLOCKS_MAX peer blocks (the named peer and the busiest first) and a line saying how many were left out; the count of contexts is whole', () => {
  const base = REPLY.engine.contexts[0]!;
  const many = Array.from({ length: 5000 }, (_, i) => {
    const peer = `2001:db8:e:${(i >> 12).toString(16)}::${(i & 4095).toString(16)}`;
    return { ...base, peerUlid: peer, pair: { local: A, peer }, lastRehome: undefined, rehomings: 0, traffic: { packetsIn: i === 4321 ? 99 : 0, bytesIn: 0, packetsOut: 0, bytesOut: 0 } };
  });
  // Each peer-made context leaves an entry in the engine's positive capability cache too.
  const capability = { positive: many.map((c) => ({ ulid: c.peerUlid, locators: [c.peerUlid], expiresInSeconds: 600 })), negative: [] };
  const reply = { ...REPLY, daemon: { ...REPLY.daemon, peers: [{ name: 'named.example.', ulid: B }] }, engine: { ...REPLY.engine, contexts: [base, ...many], capability } };
  const text = formatStatus(reply as never);
  const blocks = text.split('\n').filter((l) => l.startsWith('peer: '));
  assert.equal(blocks.length, PEER_BLOCKS_MAX);
  assert.ok(blocks.includes('peer: named.example.'), 'the named peer is shown');
  assert.ok(text.includes(`ulid: ${many[4321]!.peerUlid}`), 'the context with traffic is shown');
  assert.match(text, new RegExp(`\\(${5001 - PEER_BLOCKS_MAX} more peers not shown`));
  assert.match(text, /^contexts: 5001 \(5001 ESTABLISHED\)$/m);
  assert.match(text, /^engine capability cache \(positive, by ULID\): 5000$/m);
  assert.match(text, new RegExp(`^  \\(${5000 - PEER_BLOCKS_MAX} more not shown`, 'm'));
  assert.ok(text.split('\n').length < 20 * PEER_BLOCKS_MAX, `${text.split('\n').length} lines`);
});

test('status text: the peers routed into the TUN are listed as the peer blocks are, the first 100 and how many more (a long-running host keeps up to 10,000 resumable routes)', () => {
  const routed = Array.from({ length: 150 }, (_, i) => `2001:db8:f::${(i + 1).toString(16)}`);
  const text = formatStatus({ ...REPLY, daemon: { ...REPLY.daemon, routed } } as never);
  const line = text.split('\n').find((l) => l.startsWith('  routed into the TUN: '));
  assert.ok(line, text);
  assert.equal(line.split(', ').length, PEER_BLOCKS_MAX, line.slice(0, 200));
  assert.match(line, /^ {2}routed into the TUN: 2001:db8:f::1, .* \(50 more; `shim6 status --json` lists every one\)$/);
  assert.ok(!line.includes(routed[100]!), 'the 101st is not shown');
});
