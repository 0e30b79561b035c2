// ICMP into the engine (issue 17), with real daemons in the lab's namespaces:
// (a) a stale record claims shim6 for B, which runs no daemon: B's kernel answers A's I1 with Port
//     Unreachable, and A's daemon puts B in the negative cache at once; every application packet
//     that entered A's TUN meanwhile left as plain IPv6 (none waited for the hold's timeout).
// (b) link P runs through a router whose link to B has a smaller MTU: the router's Packet Too Big
//     about A's encapsulated datagram reaches the application translated to the ULIDs, its TCP
//     lowers its segment size, and a stream through the context arrives whole.
// (c) a router on P prohibits the encapsulated datagrams of one TCP port: by default A's engine acts on
//     it (REAP explores: there is another pair) and the application is not told (RFC 5533 §8); with
//     icmpDeliverAll it hears it too, and its connect fails at once (EACCES) although B listens there.
// (d) Forged ICMPv6 errors, really sent to A's daemon, change nothing; one quoting a real payload counts.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { needs } from '../helpers/prereq.ts';
import { LAB_ADDR, LAB_IF, nsExec, type Lab } from '../../lab/topology.ts';
import { LAB_B_NAME } from '../../lab/dns.ts';
import { runStream } from '../../lab/run.ts';
import { labDaemonFiles, LAB_STUB } from '../../lab/daemons.ts';
import { controlRequest } from '../../shim/daemon/control/client.ts';
import { E2E_TIMEOUT_MS, daemons, freshLab, log, oneDaemon, waitLog, STREAM_RATE, mostOf } from './fixture.ts';
import { DEADLINE_MS, waitFor } from '../helpers/wait.ts';
import fc from 'fast-check';
import { ADDON_PATH } from '../../native/addon.ts';
import { buildIcmpError, IPPROTO_TCP, IPPROTO_UDP } from '../../shim/dataplane/ip6-packet.ts';
import { encodePayloadHeader } from '../../shim/wire/header.ts';

const PREREQ = { root: true, commands: ['ip', 'knotd', 'kdig', 'nft'] };

interface Status {
  engine: { contexts: { peerUlid: string; pathMtu?: number; peerContextTag: number; pair: { local: string; peer: string } }[] };
  daemon: { stats: { tunIn: number; plain: number; icmpIn: number; icmpActed: number; icmpToApp: number; tooBig: number; drops: Record<string, number> } };
}
const status = async (lab: Lab, h: 'a' | 'b'): Promise<Status> => await controlRequest(labDaemonFiles(lab, h).control, 'status') as Status;

test('a stale record, no daemon on B: Port Unreachable puts B in A\'s negative cache at once, and the application\'s packets go plain without waiting', { timeout: E2E_TIMEOUT_MS }, async (t) => {
  if (!needs(t, PREREQ)) return;
  const lab = await freshLab(t);
  await oneDaemon(t, lab, 'a');
  const started = Date.now();
  const r = await runStream(lab, { to: LAB_B_NAME, resolver: LAB_STUB, durationMs: 1500, failAtMs: 1, failure: 'none', rate: STREAM_RATE, graceMs: DEADLINE_MS });
  const primed = log(lab, 'a').find((x) => x.msg === 'prime' && x.ulid === LAB_ADDR.bP);
  assert.ok(primed, 'the record primed A');
  const refused = await waitLog(lab, 'a', (x) => x.msg === 'peer-unsupported' && x.peerUlid === LAB_ADDR.bP);
  assert.equal(refused.reason, 'refused', 'through ICMP, not after the I1 retries (reason no-answer)');
  t.diagnostic(`negative cache ${Date.parse(refused.ts) - Date.parse(primed.ts)} ms after the prime; connected ${r.connectedAt - started} ms after the start`);
  assert.equal(r.corrupt, 0);
  assert.ok(r.bytes_verified > mostOf(1500));
  assert.equal(r.bytes_verified, r.bytes_sent);
  const st = await status(lab, 'a');
  assert.equal(st.daemon.stats.icmpActed, 1, `stats ${JSON.stringify(st.daemon.stats)}`);
  // No application packet waited for the hold to time out: whatever entered the TUN left as plain IPv6.
  assert.equal(log(lab, 'a').some((x) => x.msg === 'context not up in time: plain IPv6 meanwhile'), false);
  assert.equal(st.daemon.stats.plain, st.daemon.stats.tunIn, `stats ${JSON.stringify(st.daemon.stats)}`);
  assert.equal(log(lab, 'a').filter((x) => x.msg === 'prime').length, 1);
  const neg = spawnSync('ip', ['-n', lab.a, '-6', 'route', 'show', 'table', '5533'], { encoding: 'utf8' }).stdout;
  assert.doesNotMatch(neg, /dev labtun/, 'no route into the TUN');
});

/**
 * Link P through a router: namespace `<prefix>r` between A and B, its link to B with MTU `mtu`; A's
 * and B's P addresses reach each other through it (/128 routes over the connected /64), and the
 * router reaches both of A's locators.
 */
function routerOnP(t: TestContext, lab: Lab, mtu: number): string {
  const r = `${lab.prefix}r`;
  t.after(() => { spawnSync('ip', ['netns', 'del', r]); });
  const sh = (argv: string[]) => { const x = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8' }); assert.equal(x.status, 0, `${argv.join(' ')}: ${x.stderr}`); };
  sh(['ip', 'netns', 'add', r]);
  sh(['ip', '-n', r, 'link', 'set', 'lo', 'up']);
  for (const k of ['net.ipv6.conf.all.forwarding=1', 'net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0']) sh(['ip', 'netns', 'exec', r, 'sysctl', '-q', '-w', k]);
  sh(['ip', 'link', 'add', 'labra', 'netns', lab.a, 'type', 'veth', 'peer', 'name', 'ra', 'netns', r]);
  sh(['ip', 'link', 'add', 'labrb', 'netns', lab.b, 'type', 'veth', 'peer', 'name', 'rb', 'netns', r]);
  sh(['ip', '-n', r, 'link', 'set', 'rb', 'mtu', String(mtu)]);
  sh(['ip', '-n', lab.b, 'link', 'set', 'labrb', 'mtu', String(mtu)]);
  for (const [ns, dev, a] of [[lab.a, 'labra', '2001:db8:98::a'], [r, 'ra', '2001:db8:98::1'], [r, 'rb', '2001:db8:97::1'], [lab.b, 'labrb', '2001:db8:97::b']] as const) {
    sh(['ip', '-n', ns, '-6', 'addr', 'add', `${a}/64`, 'dev', dev, 'nodad']);
    sh(['ip', '-n', ns, 'link', 'set', dev, 'up']);
  }
  sh(['ip', '-n', lab.a, '-6', 'route', 'add', `${LAB_ADDR.bP}/128`, 'via', '2001:db8:98::1', 'dev', 'labra']);
  sh(['ip', '-n', lab.b, '-6', 'route', 'add', `${LAB_ADDR.aP}/128`, 'via', '2001:db8:97::1', 'dev', 'labrb']);
  sh(['ip', '-n', r, '-6', 'route', 'add', `${LAB_ADDR.aP}/128`, 'via', '2001:db8:98::a', 'dev', 'ra']);
  // A's other locator too: a false exploration on a busy machine can move A to the pair (aQ, bP),
  // whose datagrams cross the router; its Packet Too Big must reach A there as well (without this
  // route the router could not send it, and that pair was a black hole for large datagrams).
  sh(['ip', '-n', r, '-6', 'route', 'add', `${LAB_ADDR.aQ}/128`, 'via', '2001:db8:98::a', 'dev', 'ra']);
  sh(['ip', '-n', r, '-6', 'route', 'add', `${LAB_ADDR.bP}/128`, 'via', '2001:db8:97::b', 'dev', 'rb']);
  return r;
}

/**
 * The router tests below are about the stream encapsulated on the context's first pair, its ULID
 * pair: only the TUN path encapsulates there (on the kernel path the stream goes plain by the
 * kernel's own route, and the router's /128 route, with no `src`, makes a connection that binds
 * no source leave from the router link's address: not the context's at all). So they run on the
 * TUN path whatever SHIM6_TEST_DATA_PATH says.
 */
const ENCAPSULATED = { dataPath: 'tun' };

test('a router\'s Packet Too Big about the encapsulated stream reaches the application as its own: TCP adapts, the stream arrives whole', { timeout: E2E_TIMEOUT_MS }, async (t) => {
  if (!needs(t, PREREQ)) return;
  const lab = await freshLab(t);
  // The lab's TUN MTU is 1400: encapsulated, 1416 octets, more than the router's 1360-octet link to B.
  const router = routerOnP(t, lab, 1360);
  await daemons(t, lab, {}, ENCAPSULATED);
  // The context first, with small packets only: on a busy machine the handshake can outlast the
  // hold, and a full-sized packet sent plain meanwhile would draw the router's Packet Too Big to
  // A's TCP itself; A's kernel would then know the path MTU to B and fragment the encapsulated
  // stream, which would never draw the error this test is about.
  const since = Date.now();
  await runStream(lab, { to: LAB_B_NAME, resolver: LAB_STUB, durationMs: 500, failAtMs: 1, failure: 'none', rate: 2000, graceMs: DEADLINE_MS });
  await waitLog(lab, 'a', (x) => x.msg === 'context-established' && x.peerUlid === LAB_ADDR.bP && Date.parse(x.ts) >= since);
  const r = await runStream(lab, { to: LAB_B_NAME, resolver: LAB_STUB, durationMs: 3000, failAtMs: 1, failure: 'none', rate: STREAM_RATE, graceMs: DEADLINE_MS });
  assert.equal(r.corrupt, 0);
  assert.ok(r.bytes_verified > mostOf(3000), `verified ${r.bytes_verified}`);
  assert.equal(r.bytes_verified, r.bytes_sent);
  const st = await status(lab, 'a');
  assert.ok(st.engine.contexts.some((c) => c.peerUlid === LAB_ADDR.bP), 'a context with B');
  // The router's error about a datagram to B's P locator, translated: the router's MTU minus what
  // encapsulation adds (UDP 8 + payload header 8). The datagram's pair is the context's then: B's P
  // locator, from A's P locator (its first pair) or, after a busy machine's false exploration, from
  // A's Q locator (A routes by destination: it crossed the router all the same; busy CI run 162).
  const toApp = log(lab, 'a').filter((x) => x.msg === 'icmp error to the application');
  assert.ok(toApp.length >= 1, `stats ${JSON.stringify(st.daemon.stats)}`);
  assert.deepEqual({ type: toApp[0]!.type, info: toApp[0]!.info, from: toApp[0]!.from }, { type: 2, info: 1360 - 16, from: '2001:db8:98::1' /* the router, on A's side */ });
  const pair = toApp[0]!.pair as { local: string; peer: string };
  assert.ok(pair.peer === LAB_ADDR.bP && [LAB_ADDR.aP, LAB_ADDR.aQ].includes(pair.local), `the datagram's pair: to B's P locator, from one of A's: ${JSON.stringify(pair)}`);
  assert.ok(st.daemon.stats.icmpToApp >= 1, `stats ${JSON.stringify(st.daemon.stats)}`);
  // A's kernel learnt that path MTU for B's ULID from the translated error (what its TCP follows).
  const route = nsExec(lab.a, ['ip', '-6', 'route', 'get', LAB_ADDR.bP, 'from', LAB_ADDR.aP]).stdout;
  assert.match(route, /mtu 1344\b/, route);
  const rx = spawnSync('ip', ['netns', 'exec', router, 'nstat', '-az', 'Icmp6OutPktTooBigs'], { encoding: 'utf8' }).stdout;
  const moves = log(lab, 'a').filter((x) => x.msg === 'locator-pair-changed').map((x) => `${x.ts.slice(11, 23)} ${JSON.stringify(x.new)}`);
  t.diagnostic(`pair changes (a busy machine's false explorations, or none): ${moves.join(' | ') || 'none'}`);
  t.diagnostic(`router: ${rx.trim().split('\n').pop()}; A stats ${JSON.stringify({ icmpIn: st.daemon.stats.icmpIn, icmpToApp: st.daemon.stats.icmpToApp, tooBig: st.daemon.stats.tooBig })}`);
});

/**
 * Link P through a router (MTU 1500) whose firewall rejects the encapsulated datagrams that carry TCP to
 * B's port 9999 (UDP header 8 octets + payload header 8, then the TCP destination port: bits 144–159) with
 * Destination Unreachable "administratively prohibited"; B listens on 9998 and 9999; the context is up.
 * B's locator on Q is unreachable from A: every pair the context can be on (after a busy machine's false
 * exploration too) has B's P locator as its peer's, so its datagrams cross the router.
 * Returns a connect attempt from A's namespace to B's ULID (its outcome as the application saw it).
 */
async function prohibitingRouter(t: TestContext, lab: Lab, extra: Record<string, unknown>): Promise<(port: number, patience?: number) => string> {
  const router = routerOnP(t, lab, 1500);
  nsExec(router, ['nft', '-f', '-'], { input: `table inet e2eicmp {\n chain relay {\n  type filter hook forward priority 0;\n  ip6 daddr ${LAB_ADDR.bP} udp dport 5533 @th,144,16 9999 reject with icmpv6 type admin-prohibited\n }\n}\n` });
  nsExec(lab.a, ['nft', '-f', '-'], { input: `table inet e2enoq {\n chain out {\n  type filter hook output priority 0;\n  ip6 daddr ${LAB_ADDR.bQ} drop\n }\n chain in {\n  type filter hook input priority 0;\n  ip6 saddr ${LAB_ADDR.bQ} drop\n }\n}\n` });
  await daemons(t, lab, {}, extra);
  const server = spawn('ip', ['netns', 'exec', lab.b, process.execPath, '-e',
    "const n=require('net');for(const p of [9998,9999])n.createServer((s)=>s.end('ok')).listen(p,'::');setInterval(()=>{},1e6)"], { stdio: 'ignore' });
  t.after(() => { server.kill('SIGKILL'); });
  await waitFor(() => nsExec(lab.b, ['ss', '-Htln', 'sport = :9999'], { check: false }).stdout.includes('9999'), 'B listening');
  nsExec(lab.a, ['kdig', `@${LAB_STUB}`, LAB_B_NAME, 'AAAA', '+short']);
  await waitLog(lab, 'a', (x) => x.msg === 'context-established' && x.peerUlid === LAB_ADDR.bP);
  // The application gives up after `patience` ms (its own choice, as connect timeouts are).
  return (port: number, patience = DEADLINE_MS) => nsExec(lab.a, [process.execPath, '-e',
    `const t0=Date.now();const s=require('net').connect({host:'${LAB_ADDR.bP}',port:${port}});` +
    `s.on('connect',()=>{console.log('connected',Date.now()-t0);s.destroy()});s.on('error',(e)=>console.log(e.code,Date.now()-t0));` +
    `setTimeout(()=>{console.log('gave-up',Date.now()-t0);process.exit(0)},${patience}).unref()`], { timeoutMs: 2 * DEADLINE_MS }).stdout.trim();
}

test('a router prohibits one port\'s encapsulated datagrams: on a multihomed path Shim6 acts (REAP explores), the application is not told', { timeout: E2E_TIMEOUT_MS }, async (t) => {
  if (!needs(t, PREREQ)) return;
  const lab = await freshLab(t);
  const connect = await prohibitingRouter(t, lab, ENCAPSULATED);
  assert.match(connect(9998), /^connected/, 'the context carries TCP to B through the router');
  const before = await status(lab, 'a');
  const r = connect(9999, 2000);
  const after = await status(lab, 'a');
  const pairOf = (st: Status): string => JSON.stringify(st.engine.contexts.find((c) => c.peerUlid === LAB_ADDR.bP)?.pair);
  const moves = log(lab, 'a').filter((x) => x.msg === 'locator-pair-changed').map((x) => `${x.ts.slice(11, 23)} ${JSON.stringify(x.new)}`);
  t.diagnostic(`port 9999: ${r}; A stats ${JSON.stringify({ icmpIn: after.daemon.stats.icmpIn, icmpActed: after.daemon.stats.icmpActed, icmpToApp: after.daemon.stats.icmpToApp })}; pair before ${pairOf(before)}, after ${pairOf(after)}; pair changes: ${moves.join(' | ') || 'none'}`);
  assert.ok(after.daemon.stats.icmpActed > before.daemon.stats.icmpActed, 'the engine acted on the router\'s error (RFC 5533 §8)');
  assert.equal(after.daemon.stats.icmpToApp, before.daemon.stats.icmpToApp, 'and kept it from the application');
  assert.doesNotMatch(r, /^EACCES/);
});

test('with icmpDeliverAll the application connecting through the context hears the router\'s prohibition at once (EACCES)', { timeout: E2E_TIMEOUT_MS }, async (t) => {
  if (!needs(t, PREREQ)) return;
  const lab = await freshLab(t);
  const connect = await prohibitingRouter(t, lab, { ...ENCAPSULATED, icmpDeliverAll: true });
  const open = connect(9998);
  assert.match(open, /^connected/, 'the context carries TCP to B through the router');
  const refused = connect(9999);
  // Linux reports ICMPv6 "administratively prohibited" to a connecting socket as EACCES.
  assert.match(refused, /^EACCES/, `the application heard the router's error (${refused})`);
  t.diagnostic(`through the context: ${open} ms; refused after ${refused.split(' ')[1]} ms`);
  const st = await status(lab, 'a');
  assert.ok(st.daemon.stats.icmpToApp >= 1, `stats ${JSON.stringify(st.daemon.stats)}`);
  const toApp = log(lab, 'a').find((x) => x.msg === 'icmp error to the application');
  assert.deepEqual({ type: toApp?.type, code: toApp?.code, from: toApp?.from }, { type: 1, code: 1, from: '2001:db8:98::1' });
});

/** Send whole IPv6 packets from namespace `ns` through the addon's raw socket (as a host on the path would). */
function sendRaw(ns: string, packets: Uint8Array[]): number {
  const script = `const a=require(${JSON.stringify(ADDON_PATH)});const ps=require('fs').readFileSync(0,'utf8').trim().split('\\n').map((h)=>new Uint8Array(Buffer.from(h,'hex')));console.log(a.rawSend(ps,ps.length))`;
  return Number(nsExec(ns, [process.execPath, '-e', script], { input: packets.map((p) => Buffer.from(p).toString('hex')).join('\n') + '\n' }).stdout.trim());
}

/** An ICMPv6 error from `from` to `to` quoting a UDP datagram `src`:5533 → `dst`:5533 carrying `data`. */
function icmpAboutUdp(from: string, to: string, type: number, code: number, info: number, src: string, dst: string, data: Uint8Array): Uint8Array {
  const udp = new Uint8Array(8 + data.length);
  const dv = new DataView(udp.buffer);
  dv.setUint16(0, 5533); dv.setUint16(2, 5533); dv.setUint16(4, udp.length);
  udp.set(data, 8);
  return buildIcmpError(from, to, type, code, info, { srcUlid: src, dstUlid: dst, nextHeader: IPPROTO_UDP, payloadLength: udp.length, payload: udp });
}

test('forged ICMPv6 errors sent to A\'s daemon change nothing; the one quoting a real payload is acted on', { timeout: E2E_TIMEOUT_MS }, async (t) => {
  if (!needs(t, PREREQ)) return;
  const lab = await freshLab(t);
  await daemons(t, lab);
  nsExec(lab.a, ['kdig', `@${LAB_STUB}`, LAB_B_NAME, 'AAAA', '+short']);
  await waitLog(lab, 'a', (x) => x.msg === 'context-established' && x.peerUlid === LAB_ADDR.bP);
  const before = await status(lab, 'a');
  const ctx = before.engine.contexts.find((c) => c.peerUlid === LAB_ADDR.bP)!;
  const { local, peer } = ctx.pair;
  // 300 forgeries: random types, codes, MTUs and quotes (random payload headers and tags, junk, cut I1s), some from
  // elsewhere, all addressed to the context's own locators so the kernel hands them to the daemon's socket.
  const forged = fc.sample(fc.record({
    type: fc.constantFrom(1, 2, 3, 4), code: fc.integer({ min: 0, max: 6 }), info: fc.constantFrom(0, 600, 1280, 1300, 56, 60),
    from: fc.constantFrom(peer, '2001:db8:1::99'),
    data: fc.oneof(
      fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 2 ** 47 - 1 }), fc.uint8Array({ maxLength: 200 }))
        .filter(([, tag]) => tag !== ctx.peerContextTag)
        .map(([nh, tag, rest]) => new Uint8Array([...encodePayloadHeader(nh, tag), ...rest])),
      fc.uint8Array({ minLength: 8, maxLength: 300 }),
    ),
  }), { seed: 5533, numRuns: 300 }).map((f) => icmpAboutUdp(f.from, local, f.type, f.code, f.info, local, peer, f.data));
  // Sent from the DNS namespace, a host off the A–B paths (B's own packets to A's ULID would go through its tunnel).
  nsExec(lab.dns, ['ip', '-6', 'route', 'replace', `${local}/128`, 'via', LAB_ADDR.aDns, 'dev', LAB_IF.dnsA]);
  assert.equal(sendRaw(lab.dns, forged), forged.length);
  // The same path, quoting a payload the context could have sent (its CT(peer)): a Packet Too Big that counts.
  assert.equal(sendRaw(lab.dns, [icmpAboutUdp(peer, local, 2, 0, 1300, local, peer, new Uint8Array([...encodePayloadHeader(IPPROTO_TCP, ctx.peerContextTag), ...new Uint8Array(40)]))]), 1);
  await waitFor(async () => (await status(lab, 'a')).daemon.stats.icmpIn >= before.daemon.stats.icmpIn + forged.length + 1, 'every error heard by A\'s daemon');
  const after = await status(lab, 'a');
  const s = after.daemon.stats;
  t.diagnostic(`A: ${JSON.stringify({ icmpIn: s.icmpIn, icmpActed: s.icmpActed, icmpToApp: s.icmpToApp, drops: s.drops })}`);
  assert.equal(s.icmpActed, before.daemon.stats.icmpActed, 'no forgery acted on');
  assert.equal(s.icmpToApp, before.daemon.stats.icmpToApp + 1, 'only the genuine quote reached the application');
  const c2 = after.engine.contexts.find((c) => c.peerUlid === LAB_ADDR.bP)!;
  assert.equal(c2.pathMtu, 1300 - 16, 'the genuine Packet Too Big lowered the path MTU; no forgery did');
  assert.equal(log(lab, 'a').some((x) => x.msg === 'peer-unsupported' || x.msg === 'context-failed' || x.msg === 'context-closed'), false);
});
