// Seeded fuzzing of the data plane's byte handling of packets a peer controls: the packet splitter and
// the TCP prompter (JS), and the addon's GRO coalescer (C) which sees every decapsulated packet before
// the kernel does; and of the addon's parsers of what the kernel hands it (TSO segments, NFLOG and
// nf_tables messages), built with AddressSanitizer. Junk must be dropped or passed on, never crash or
// read out of bounds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { needs } from '../helpers/prereq.ts';
import { NetLab, uniqueName } from '../helpers/netns.ts';
import { LinuxTun } from '../../shim/dataplane/tun-linux.ts';
import { splitPacket, buildPacket, IPPROTO_TCP } from '../../shim/dataplane/ip6-packet.ts';
import { PROMPT_MAX_FLOWS, TcpPrompter, type ChallengeAnswer } from '../../shim/dataplane/tcp-prompt.ts';
import { SimRng, fuzzRuns, fuzzSeed } from '../helpers/rng.ts';
import { buildNativeHarness } from '../helpers/native-harness.ts';

/** Seeded uniform integers in [0, n) (test/helpers/rng.ts). */
function rng(seed: number): (n: number) => number {
  const r = new SimRng(seed);
  return (n) => r.int(n);
}

const A = 'fd00:f::a', B = 'fd00:f::b';

/** A run of in-order TCP segments (what GRO merges), then seeded mutations. */
function segments(r: (n: number) => number, count: number): Uint8Array[] {
  const mss = 100 + r(1300);
  let seq = r(0x7fffffff);
  const out: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const opts = r(4) * 4;
    const len = i === count - 1 ? r(mss + 1) : mss;
    const tcp = new Uint8Array(20 + opts + len);
    tcp[0] = 0x13; tcp[1] = 0x88; tcp[2] = 0x1f; tcp[3] = 0x90;
    new DataView(tcp.buffer).setUint32(4, seq >>> 0);
    tcp[12] = ((20 + opts) / 4) << 4; tcp[13] = 0x10 | (r(4) === 0 ? 0x08 : 0);
    for (let j = 20 + opts; j < tcp.length; j++) tcp[j] = r(256);
    seq += len;
    out.push(buildPacket(A, B, IPPROTO_TCP, tcp));
  }
  for (let m = r(6); m > 0; m--) {
    const p = out[r(out.length)]!;
    const kind = r(4);
    if (kind === 0) p[r(p.length)] = r(256);                               // any octet
    else if (kind === 1) p[40 + 12] = r(256);                              // data offset / reserved
    else if (kind === 2) { p[4] = r(256); p[5] = r(256); }                 // IPv6 payload length
    else out[out.indexOf(p)] = p.subarray(0, r(p.length + 1));             // truncated
  }
  return out;
}

test('fuzz: splitPacket and TcpPrompter never throw on junk and stay within bounds', (t) => {
  const r = rng(fuzzSeed(t, 0x5eed));
  const prompter = new TcpPrompter();
  for (let i = 0; i < fuzzRuns(3000); i++) {
    for (const p of segments(r, 1 + r(8))) {
      const s = splitPacket(p);
      if (s) assert.ok(s.payload.length <= p.length - 40);
      prompter.observe(p, A, B);
    }
    const junk = new Uint8Array(r(200));
    for (let j = 0; j < junk.length; j++) junk[j] = r(256);
    assert.doesNotThrow(() => { splitPacket(junk); prompter.observe(junk, A, B); });
  }
  const marks = prompter.marks(B);
  assert.ok(marks.size <= prompter.size);
  for (const p of prompter.prompt(B)) assert.ok(p.length >= 60);
  // The replays are the flows' segments again: every flow still stands where it stood, so a later round replays them all again.
  assert.equal(prompter.prompt(B, marks).length, prompter.prompt(B).length);
});

test('fuzz: TcpPrompter.selfPrompt takes junk segments from an armed peer without throwing, prompts a flow at most once, and keeps at most 256 flows', (t) => {
  const r = rng(fuzzSeed(t, 0x5e1f));
  const prompter = new TcpPrompter();
  prompter.arm(B, 0);
  const prompted = new Set<number>();
  for (let i = 0; i < fuzzRuns(20000); i++) {
    const tcp = new Uint8Array(r(64));
    // Mostly zero octets, so that ports and acknowledgments repeat and flows get prompted.
    for (let j = 0; j < tcp.length; j++) tcp[j] = r(4) === 0 ? r(256) : 0;
    if (tcp.length >= 20 && r(2) === 0) { tcp[12] = 5 << 4; tcp[13] = 0x10; }
    const seg = tcp.length >= 20 && r(2) === 0 ? tcp.subarray(0, 20) : tcp;
    let ack: number | undefined;
    assert.doesNotThrow(() => { ack = prompter.selfPrompt(seg, B, A, i % 3000); });
    if (ack !== undefined) {
      const flow = (seg[0]! << 24 | seg[1]! << 16 | seg[2]! << 8 | seg[3]!) >>> 0;
      assert.ok(!prompted.has(flow), 'a flow is prompted once per arming');
      prompted.add(flow);
      assert.ok(ack >= 0 && ack <= 0xffffffff);
    }
  }
  assert.ok(prompted.size > 0 && prompted.size <= 256, `flows prompted: ${prompted.size}`);
  // After the armed time nothing is prompted, and the peer is no longer armed.
  const late = new TcpPrompter();
  const ackOnly = new Uint8Array(20);
  ackOnly[12] = 5 << 4; ackOnly[13] = 0x10; ackOnly[1] = 1;
  late.arm(B, 0);
  assert.equal(late.selfPrompt(ackOnly, B, A, 10), undefined, 'the first of the ACKs');
  assert.equal(late.selfPrompt(ackOnly, B, A, 3001), undefined, 'the second, after the armed time');
  assert.equal(late.anyArmed, false);
});

test('fuzz: TcpPrompter.challengeAnswer takes junk segments from our stack without throwing, answers each challenged flow at most once and no other, and keeps at most PROMPT_MAX_FLOWS', (t) => {
  const r = rng(fuzzSeed(t, 0xc4a1));
  const prompter = new TcpPrompter();
  // Ports 0..63 on both sides: junk with mostly zero octets hits them often.
  const flows = [];
  for (let lp = 0; lp < 64; lp++) for (let pp = 0; pp < 80; pp++) flows.push({ local: A, localPort: lp, peer: B, peerPort: pp, persist: pp % 2 === 0 });
  prompter.afterRestart(flows, 0);
  const challenged = prompter.challenge(A, B, 0);
  assert.equal(challenged.length, PROMPT_MAX_FLOWS, 'bounded');
  const isChallenged = new Set(challenged.map((f) => f.localPort * 65536 + f.peerPort));
  const answered = new Set<number>();
  for (let i = 0; i < fuzzRuns(20000); i++) {
    const tcp = new Uint8Array(r(64));
    for (let j = 0; j < tcp.length; j++) tcp[j] = r(4) === 0 ? r(256) : 0;
    if (tcp.length >= 20 && r(2) === 0) { tcp[1] = r(64); tcp[3] = r(80); tcp[12] = 5 << 4; tcp[13] = 0x10; }
    const seg = tcp.length >= 20 && r(2) === 0 ? tcp.subarray(0, 20) : tcp;
    let a: ChallengeAnswer | undefined;
    assert.doesNotThrow(() => { a = prompter.challengeAnswer(seg, A, B, i % 3000); });
    if (a !== undefined) {
      const flow = ((seg[0]! << 8 | seg[1]!) * 65536) + (seg[2]! << 8 | seg[3]!);
      assert.ok(isChallenged.has(flow), 'only a challenged flow is answered');
      assert.ok(!answered.has(flow), 'once per flow');
      answered.add(flow);
      assert.deepEqual([a.flow.localPort, a.flow.peerPort, a.flow.persist], [seg[0]! << 8 | seg[1]!, seg[2]! << 8 | seg[3]!, a.flow.peerPort % 2 === 0], 'the flow as the restart found it');
      assert.ok(a.seq >= 0 && a.seq <= 0xffffffff && a.ack >= 0 && a.ack <= 0xffffffff);
    }
  }
  assert.ok(answered.size > 0, `flows answered: ${answered.size}`);
  // After CHALLENGE_MS nothing answers, and nothing stays challenged.
  const ack = new Uint8Array(20);
  ack[1] = 1; ack[3] = 1; ack[12] = 5 << 4; ack[13] = 0x10;
  const late = new TcpPrompter();
  late.afterRestart([{ local: A, localPort: 1, peer: B, peerPort: 1, persist: false }], 0);
  assert.equal(late.challenge(A, B, 60_001).length, 0, 'the context came up after the flows stopped waiting');
  late.afterRestart([{ local: A, localPort: 1, peer: B, peerPort: 1, persist: false }], 0);
  assert.equal(late.challenge(A, B, 10).length, 1);
  assert.equal(late.challengeAnswer(ack, A, B, 3011), undefined);
  assert.equal(late.anyChallenged, false);
});

test('fuzz: the native GRO coalescer takes mutated TCP runs without crashing (real TUN, offloads on)', async (t) => {
  if (!needs(t, { root: true, commands: ['ip'] })) return;
  const net = new NetLab(t);
  const ns = net.ns('dpf');
  const tun = LinuxTun.open({ name: uniqueName('dpfz'), mtu: 1500, offload: true });
  t.after(() => tun.close());
  assert.equal(spawnSync('ip', ['link', 'set', 'dev', tun.name, 'netns', ns.name]).status, 0);
  net.run(ns, ['ip', 'link', 'set', tun.name, 'up']);
  net.addr(ns, tun.name, `${B}/64`);
  const r = rng(fuzzSeed(t, 0xc0a1e5ce));
  let written = 0, offered = 0;
  for (let i = 0; i < fuzzRuns(2000); i++) {
    const batch = segments(r, 2 + r(40));
    offered += batch.length;
    written += tun.write(batch);
  }
  t.diagnostic(`${written} of ${offered} packets accepted`);
  // The kernel may refuse malformed packets (skipped, the rest of the batch still goes); most go in.
  assert.ok(written > offered / 2, `${written} of ${offered} written`);
  const rx = JSON.parse(net.run(ns, ['ip', '-s', '-j', 'link', 'show', tun.name]).stdout) as Array<{ stats64: { rx: { packets: number } } }>;
  assert.ok(rx[0]!.stats64.rx.packets > 0);
});

test('fuzz: the addon\'s parsers of kernel bytes (TSO segments, partial checksums, NFLOG packets, nf_tables counters) stay within their buffers and keep their invariants (AddressSanitizer, UBSan)', (t) => {
  const bin = buildNativeHarness(t, 'test/dataplane/fixtures/native-parsers-fuzz.c');
  if (bin === undefined) return;
  const r = spawnSync(bin, [String(fuzzSeed(t, 0xa5a17)), String(fuzzRuns(20000))], { encoding: 'utf8', timeout: 600_000 });
  assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
  const [, segments, records, counters] = r.stdout.trim().split(' ').map(Number);
  t.diagnostic(`TSO segments ${segments}, NFLOG records ${records}, counters ${counters}`);
  assert.ok(segments! > 0 && records! > 0 && counters! > 0, 'the valid inputs were parsed too');
});
