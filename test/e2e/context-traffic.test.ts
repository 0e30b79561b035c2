// Each context shows only its own traffic (`shim6 status`, `--json`, the metrics), also when two
// contexts share the peer's ULID. The lab's renumbering case makes the second one: A gets an
// address on link R, outside its HBA set, while a context from its ULID with B carries a stream on
// the kernel path; a flow from the new address to B starts integrated discovery, which opens a
// second context with B from that address, whose Shim6 datagrams B's firewall drops, so it never
// gets established. Before, the status matched the kernel's counters to
// contexts by the peer's ULID alone and showed the live context's packets and octets on that one too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import parse from 'parse-prometheus-text-format';
import { needs } from '../helpers/prereq.ts';
import { LAB_ADDR, nsExec } from '../../lab/topology.ts';
import { LAB_B_NAME } from '../../lab/dns.ts';
import { LAB_STUB, labDaemonFiles } from '../../lab/daemons.ts';
import { runStream } from '../../lab/run.ts';
import { LAB_ADDR_R, LAB_IF_R, LAB_INTERFACES_R, addAddress, linkRUp } from '../../lab/renumber.ts';
import { controlRequest } from '../../shim/daemon/control/client.ts';
import { shim6 } from '../helpers/cli.ts';
import { waitFor } from '../helpers/wait.ts';
import { E2E_TIMEOUT_MS, freshLab, oneDaemon, waitLog, STREAM_RATE } from './fixture.ts';

const METRICS = 'http://[::1]:9533';
const ZERO = { packetsIn: 0, bytesIn: 0, packetsOut: 0, bytesOut: 0 };

interface Ctx { state: string; localUlid: string; peerUlid: string; contextTag: number; path?: string; traffic: typeof ZERO }
interface Status { engine: { contexts: Ctx[] } }

/** GET `url` from inside namespace `ns` (the metrics port listens on A's loopback). */
function fetchIn(ns: string, url: string): string {
  const r = nsExec(ns, [process.execPath, '-e', `fetch(${JSON.stringify(url)}).then(async (r) => { if (!r.ok) throw new Error('HTTP ' + r.status); process.stdout.write(await r.text()); })`], { timeoutMs: 30_000 });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

/** One UDP datagram from `src` to B's ULID: a new flow for A's discovery (each from a new port). */
function flowFrom(ns: string, src: string): void {
  const code = `const s=require('dgram').createSocket('udp6');s.bind(0,${JSON.stringify(src)},()=>s.send('x',9,${JSON.stringify(LAB_ADDR.bP)},()=>s.close()));`;
  nsExec(ns, [process.execPath, '-e', code], { check: false, timeoutMs: 30_000 });
}

test('two contexts with the same peer ULID: the one never established shows no traffic, the live one its own (status, --json, metrics)', { timeout: E2E_TIMEOUT_MS }, async (t) => {
  if (!needs(t, { root: true, commands: ['ip', 'knotd', 'kdig', 'nft'] })) return;
  const lab = await freshLab(t);
  linkRUp(lab);
  await oneDaemon(t, lab, 'b');
  // The kernel path on A whatever the run's SHIM6_TEST_DATA_PATH: its counters are what was misattributed.
  await oneDaemon(t, lab, 'a', { interfaces: LAB_INTERFACES_R, metrics: '[::1]:9533', dataPath: 'kernel' });
  const control = labDaemonFiles(lab, 'a').control;
  const status = async (): Promise<Status> => await controlRequest(control, 'status') as unknown as Status;

  // The live context, from A's ULID, carrying a stream.
  const r = await runStream(lab, { to: LAB_B_NAME, resolver: LAB_STUB, durationMs: 2000, failAtMs: 1, failure: 'none', rate: STREAM_RATE, graceMs: 30_000 });
  assert.equal(r.bytes_verified, r.bytes_sent, 'the stream arrived whole');
  const live = async (): Promise<Ctx | undefined> => (await status()).engine.contexts.find((c) => c.localUlid === LAB_ADDR.aP && c.peerUlid === LAB_ADDR.bP && c.state === 'ESTABLISHED');
  // The kernel's counters read at least once while it was off the TUN (the kernel path, or the encapsulation after a false exploration).
  await waitFor(async () => { const c = await live(); return c !== undefined && c.path !== 'tun' && c.traffic.packetsOut > 0; }, 'the live context off the TUN, with traffic');

  // A second context with B, from another address of A's, whose exchange never completes: B's
  // firewall drops the Shim6 datagrams from that address.
  nsExec(lab.b, ['nft', '-f', '-'], { input: `table ip6 e2e_no_r {\n chain i { type filter hook prerouting priority -300; ip6 saddr ${LAB_ADDR_R.a} udp dport 5533 drop; }\n}\n` });
  addAddress(lab, 'a', LAB_IF_R, LAB_ADDR_R.a);
  await waitLog(lab, 'a', (x) => x.msg === 'local locators changed' && ((x.added as string[] | undefined) ?? []).includes(LAB_ADDR_R.a));
  const other = async (): Promise<Ctx | undefined> => (await status()).engine.contexts.find((c) => c.localUlid === LAB_ADDR_R.a && c.peerUlid === LAB_ADDR.bP);
  // Discovery takes one flow per destination every 5 s: a new flow each second until one starts it.
  await waitFor(async () => { if (await other() !== undefined) return true; flowFrom(lab.a, LAB_ADDR_R.a); return false; }, 'a second context with B, from A\'s R address', 60_000, 1000);

  const st = await status();
  const mine = st.engine.contexts.find((c) => c.localUlid === LAB_ADDR.aP && c.peerUlid === LAB_ADDR.bP);
  const theirs = st.engine.contexts.find((c) => c.localUlid === LAB_ADDR_R.a && c.peerUlid === LAB_ADDR.bP);
  assert.ok(mine !== undefined && theirs !== undefined, `both contexts in the status: ${JSON.stringify(st.engine.contexts.map((c) => [c.localUlid, c.peerUlid, c.state]))}`);
  t.diagnostic(`live ${mine.state} ${JSON.stringify(mine.traffic)}; second ${theirs.state} ${JSON.stringify(theirs.traffic)}`);
  assert.notEqual(theirs.state, 'ESTABLISHED', 'the second context never got established');
  assert.ok(mine.traffic.packetsOut > 0 && mine.traffic.bytesOut > 0 && mine.traffic.packetsIn > 0, 'the live context shows its traffic');
  assert.deepEqual(theirs.traffic, ZERO, '--json: the second context carried nothing');
  assert.equal(theirs.path, undefined, 'no data path: it was never established');

  // The text: one block per context; the second one's transfer is zero.
  const text = shim6(['status', '--socket', control]);
  assert.equal(text.status, 0, text.stderr);
  const transfers = text.stdout.split('\n').filter((l) => l.startsWith('  transfer: '));
  assert.equal(transfers.length, 2, text.stdout);
  assert.ok(transfers.includes('  transfer: 0 B received, 0 B sent (0 / 0 packets)'), `the second context's block shows no traffic:\n${text.stdout}`);
  assert.equal(new Set(transfers).size, 2, `two different transfers:\n${text.stdout}`);

  // The metrics: per context (its tag), each its own.
  const fams = parse(fetchIn(lab.a, `${METRICS}/metrics`));
  const sample = (name: string, tag: number): number => Number(fams.find((f) => f.name === name)?.metrics.find((m) => m.labels?.context === String(tag) && m.labels?.peer === LAB_ADDR.bP)?.value ?? NaN);
  for (const name of ['shim6_context_sent_packets_total', 'shim6_context_sent_bytes_total', 'shim6_context_received_packets_total', 'shim6_context_received_bytes_total']) {
    assert.equal(sample(name, theirs.contextTag), 0, `${name} of the second context`);
    assert.ok(sample(name, mine.contextTag) > 0, `${name} of the live context`);
  }
});
