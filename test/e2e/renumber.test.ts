// E2E (issue 18): renumbering while a TCP stream runs through the shim6 daemons,
// with real interface address changes in the lab's namespaces.
//  - New prefix: A gets an address on a third link R, on a prefix outside its HBA
//    set; B learns it in one CGA-signed Update Request. Then the address the
//    stream started on is deprecated (preferred lifetime 0): A withdraws it, the
//    context moves off it, and only then is it removed.
//  - Privacy address: the kernel makes RFC 8981 temporary addresses on A's Q
//    prefix (use_tempaddr, mngtmpaddr) with lifetimes of seconds, so one is made,
//    deprecated and replaced while the stream runs; B's view follows each one.
// Every byte arrives once, in order, intact.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { needs } from '../helpers/prereq.ts';
import { LAB_ADDR, LAB_IF, nsExec, nsIpBatch, type Lab } from '../../lab/topology.ts';
import { LAB_A_NAME, LAB_B_NAME, labDnsUpdate } from '../../lab/dns.ts';
import { readFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { recordLocators } from '../helpers/authdns.ts';
import { LAB_STUB, labDaemonFiles, type LogRecord } from '../../lab/daemons.ts';
import { runStream } from '../../lab/run.ts';
import { LAB_ADDR_R, LAB_IF_R, LAB_INTERFACES_R, addAddress, deprecateAddress, linkRUp, removeAddress } from '../../lab/renumber.ts';
import { controlRequest } from '../../shim/daemon/control/client.ts';
import { E2E_TIMEOUT_MS, freshLab, log, oneDaemon, streamIntact, waitLog, STREAM_RATE } from './fixture.ts';
import { MAX_PEER_LOCATORS } from '../../shim/engine/index.ts';
import { waitFor } from '../helpers/wait.ts';

const PREREQ = { root: true, commands: ['ip', 'knotd', 'kdig', 'nft'] };

interface Status { engine: { contexts: { peerUlid: string; state: string; pair: { local: string; peer: string }; peerLocators: { address: string; verified: boolean; flags: number }[] }[] } }
const status = async (lab: Lab, h: 'a' | 'b'): Promise<Status> => await controlRequest(labDaemonFiles(lab, h).control, 'status') as Status;
const context = async (lab: Lab, h: 'a' | 'b', peer: string) => (await status(lab, h)).engine.contexts.find((c) => c.peerUlid === peer && c.state === 'ESTABLISHED');
const pairOf = (r: LogRecord) => r.new as { local: string; peer: string };

async function renumberLab(t: TestContext, extraA: (lab: Lab) => Record<string, unknown> = () => ({})): Promise<Lab> {
  const lab = await freshLab(t);
  linkRUp(lab);
  await oneDaemon(t, lab, 'b');
  await oneDaemon(t, lab, 'a', { interfaces: LAB_INTERFACES_R, ...extraA(lab) });
  return lab;
}

/** The locators of A's capability record as the lab's Knot serves it now. */
function dnsLocators(lab: Lab): string[] {
  const line = nsExec(lab.a, ['kdig', `@${LAB_ADDR.dnsA}`, LAB_A_NAME, 'TYPE65300', '+short', '+timeout=2', '+retry=0'], { check: false }).stdout.trim();
  return recordLocators(line);
}

interface DnsStatus { dnsUpdate?: { state: string; failures: number; lastError: { code: string; rcode: string | null } | null; published: string[] | null } }

test('renumbering, new prefix: A\'s address on a prefix outside its HBA set reaches B in one Update and DNS (while the DNS server is down for a while); the address the stream started on is deprecated, the context moves off it, then it goes; no byte lost', { timeout: E2E_TIMEOUT_MS }, async (t) => {
  if (!needs(t, PREREQ)) return;
  const lab = await renumberLab(t, (l) => ({ dnsUpdate: labDnsUpdate(l) }));
  await waitFor(() => dnsLocators(lab).join() === [LAB_ADDR.aP, LAB_ADDR.aQ].join(), 'A publishes its record at start');
  const since = Date.now();
  const stream = runStream(lab, { to: LAB_B_NAME, resolver: LAB_STUB, durationMs: 9000, failAtMs: 1, failure: 'none', rate: STREAM_RATE, graceMs: 30_000 });
  await waitLog(lab, 'a', (r) => r.msg === 'context-established' && r.peerUlid === LAB_ADDR.bP && Date.parse(r.ts) >= since);
  const start = await context(lab, 'a', LAB_ADDR.bP);
  assert.equal(start?.pair.local, LAB_ADDR.aP, 'the stream starts on A\'s P address (its ULID)');

  // The lab's Knot stops answering (SIGSTOP) while the new address appears.
  const knotPid = Number(readFileSync(path.join(lab.stateDir, 'knot', 'knot.pid'), 'utf8').trim());
  process.kill(knotPid, 'SIGSTOP');
  let paused = true;
  t.after(() => { if (paused) process.kill(knotPid, 'SIGCONT'); });
  const addedAt = Date.now();
  addAddress(lab, 'a', LAB_IF_R, LAB_ADDR_R.a);
  await waitLog(lab, 'b', (r) => r.msg === 'locator-set-updated' && r.peerUlid === LAB_ADDR.aP && (r.locators as string[]).includes(LAB_ADDR_R.a));
  await waitFor(async () => ((await status(lab, 'a')) as unknown as DnsStatus).dnsUpdate?.lastError?.code === 'ETIMEOUT', 'A\'s update times out while the server is down');
  process.kill(knotPid, 'SIGCONT');
  paused = false;
  await waitFor(() => dnsLocators(lab).includes(LAB_ADDR_R.a), 'the new address in DNS once the server is back');
  t.diagnostic(`the new address was in DNS ${Date.now() - addedAt} ms after it appeared (the server was paused meanwhile)`);
  const updates = log(lab, 'b').filter((r) => r.msg === 'locator-set-updated' && r.peerUlid === LAB_ADDR.aP && Date.parse(r.ts) >= addedAt);
  assert.equal(updates.length, 1, 'one Update Request carried the new address');
  assert.equal((await context(lab, 'b', LAB_ADDR.aP))?.peerLocators.find((l) => l.address === LAB_ADDR_R.a)?.verified, true, 'B verified it (CGA Signature)');

  const deprecatedAt = Date.now();
  deprecateAddress(lab, 'a', LAB_IF.P, LAB_ADDR.aP);
  // Both ends off the deprecated address: by a pair change after the deprecation, or already before
  // it (on a busy machine the fast profile's 150 ms Send Timeout may explore and move, docs/engine.md).
  await waitFor(async () => (await context(lab, 'a', LAB_ADDR.bP))?.pair.local !== LAB_ADDR.aP, 'A sends from another address than the deprecated one');
  await waitFor(async () => (await context(lab, 'b', LAB_ADDR.aP))?.pair.peer !== LAB_ADDR.aP, 'B sends to another address than the deprecated one');
  const movedA = log(lab, 'a').filter((r) => r.msg === 'locator-pair-changed' && r.peerUlid === LAB_ADDR.bP).at(-1);
  const movedB = log(lab, 'b').filter((r) => r.msg === 'locator-pair-changed' && r.peerUlid === LAB_ADDR.aP).at(-1);
  if (movedA && movedB) t.diagnostic(`after the deprecation A sends from ${pairOf(movedA).local} (${Date.parse(movedA.ts) - deprecatedAt} ms), B to ${pairOf(movedB).peer} (${Date.parse(movedB.ts) - deprecatedAt} ms)`);
  // Only now does the address go.
  const removedAt = Date.now();
  removeAddress(lab, 'a', LAB_IF.P, LAB_ADDR.aP);
  await waitLog(lab, 'a', (r) => r.msg === 'local locators changed' && (r.removed as string[]).includes(LAB_ADDR.aP) && Date.parse(r.ts) >= removedAt);

  const r = await stream;
  t.diagnostic(`stall ${r.stall_ms} ms, ${r.bytes_sent} bytes; deprecated at +${deprecatedAt - r.connectedAt} ms, removed at +${removedAt - r.connectedAt} ms`);
  const late = (['a', 'b'] as const).flatMap((h) => log(lab, h).filter((x) => Date.parse(x.ts) >= deprecatedAt && x.component !== 'control')
    .map((x) => `${Date.parse(x.ts) - r.connectedAt} ${h} ${x.msg} ${JSON.stringify(x.new ?? x.removed ?? x.locators ?? (x.msg === "context-initiated" || x.msg.startsWith("ulid") ? x : ''))}`));
  if (r.stall_ms > 1000) t.diagnostic(`after the deprecation: ${late.sort().join(' | ')}; samples ${JSON.stringify(r.samples.map((x) => [x.t - r.connectedAt, x.bytes]))}`);
  assert.equal(r.complete, true, 'the stream ended normally');
  assert.equal(r.corrupt, 0);
  assert.equal(r.bytes_verified, r.bytes_sent, 'every byte arrived once, in order, intact');
  const [a, b] = [await context(lab, 'a', LAB_ADDR.bP), await context(lab, 'b', LAB_ADDR.aP)];
  assert.ok(a && b, 'both contexts still up');
  assert.notEqual(a.pair.local, LAB_ADDR.aP);
  assert.notEqual(b.pair.peer, LAB_ADDR.aP);
  assert.equal(b.peerLocators.find((l) => l.address === LAB_ADDR.aP)!.flags & 1, 1, 'B no longer sends to the withdrawn address');
  // No packet left A from the removed address after it was removed (A's locator sockets: none bound there).
  const moves = log(lab, 'a').filter((x) => x.msg === 'locator-pair-changed' && Date.parse(x.ts) >= removedAt && pairOf(x).local === LAB_ADDR.aP);
  assert.deepEqual(moves, [], 'A never went back to the removed address');
  // DNS follows: the removed address is gone from A's record, the new one is there.
  await waitFor(() => !dnsLocators(lab).includes(LAB_ADDR.aP), 'the removed address leaves DNS');
  assert.deepEqual(dnsLocators(lab).sort(), [LAB_ADDR.aQ, LAB_ADDR_R.a].sort());
  const ds = ((await status(lab, 'a')) as unknown as DnsStatus).dnsUpdate!;
  assert.equal(ds.lastError, null);
  assert.ok(ds.failures >= 1, 'the failures while the server was down were counted');
});

test('renumbering, privacy addresses: temporary addresses the kernel makes, deprecates and replaces (RFC 8981) are announced, verified and withdrawn in turn; no byte lost', { timeout: E2E_TIMEOUT_MS }, async (t) => {
  if (!needs(t, PREREQ)) return;
  const lab = await renumberLab(t);
  const since = Date.now();
  const stream = runStream(lab, { to: LAB_B_NAME, resolver: LAB_STUB, durationMs: 16_000, failAtMs: 1, failure: 'none', rate: STREAM_RATE, graceMs: 30_000 });
  await waitLog(lab, 'a', (r) => r.msg === 'context-established' && r.peerUlid === LAB_ADDR.bP && Date.parse(r.ts) >= since);
  // Temporary addresses on Q's prefix: preferred for 6 s, made anew 3 s before that runs out (regen_advance), valid for 12 s.
  for (const [k, v] of [['use_tempaddr', 2], ['max_desync_factor', 0], ['temp_prefered_lft', 6], ['temp_valid_lft', 12], ['regen_max_retry', 3]] as const) {
    nsExec(lab.a, ['sysctl', '-qw', `net.ipv6.conf.${LAB_IF.Q}.${k}=${v}`]);
  }
  nsExec(lab.a, ['ip', '-6', 'addr', 'change', `${LAB_ADDR.aQ}/64`, 'dev', LAB_IF.Q, 'mngtmpaddr']);
  const temporaries = (): string[] => {
    const j = JSON.parse(nsExec(lab.a, ['ip', '-j', '-6', 'addr', 'show', 'dev', LAB_IF.Q]).stdout) as { addr_info: { local: string; temporary?: boolean }[] }[];
    return j.flatMap((l) => l.addr_info.filter((x) => x.temporary).map((x) => x.local));
  };
  const seen = new Set<string>();
  await waitFor(() => { for (const a of temporaries()) seen.add(a); return seen.size >= 1; }, 'the kernel made a temporary address');
  const first = [...seen][0]!;
  await waitLog(lab, 'b', (r) => r.msg === 'locator-set-updated' && r.peerUlid === LAB_ADDR.aP && (r.locators as string[]).includes(first));
  assert.equal((await context(lab, 'b', LAB_ADDR.aP))?.peerLocators.find((l) => l.address === first)?.verified, true, 'B verified the privacy address (CGA Signature)');
  // It is deprecated and withdrawn; its successor is announced.
  await waitLog(lab, 'a', (r) => r.msg === 'local locators changed' && (r.deprecated as string[] | undefined ?? []).includes(first));
  await waitFor(() => { for (const a of temporaries()) seen.add(a); return seen.size >= 2; }, 'the kernel made the next temporary address');
  const second = [...seen].find((a) => a !== first)!;
  const upd = await waitLog(lab, 'b', (r) => r.msg === 'locator-set-updated' && r.peerUlid === LAB_ADDR.aP && (r.locators as string[]).includes(second) && !(r.locators as string[]).includes(first));
  t.diagnostic(`B's view of A after the rotation: ${JSON.stringify(upd.locators)}`);
  assert.equal((await context(lab, 'b', LAB_ADDR.aP))?.peerLocators.find((l) => l.address === second)?.verified, true);
  const r = await stream;
  t.diagnostic(`stall ${r.stall_ms} ms, ${r.bytes_sent} bytes, temporary addresses seen: ${[...seen].join(' ')}`);
  assert.equal(r.complete, true, 'the stream ended normally');
  assert.equal(r.corrupt, 0);
  assert.equal(r.bytes_verified, r.bytes_sent, 'every byte arrived once, in order, intact');
  assert.ok(!log(lab, 'b').some((x) => x.msg === 'locator-unverified'), 'B refused none of A\'s updates');
});

test('renumbering, removed outright: the address the stream runs on is deleted with no deprecation first; A withdraws it in one Update, the context moves to another pair, no byte lost', { timeout: E2E_TIMEOUT_MS }, async (t) => {
  if (!needs(t, PREREQ)) return;
  const lab = await renumberLab(t);
  const since = Date.now();
  const stream = runStream(lab, { to: LAB_B_NAME, resolver: LAB_STUB, durationMs: 8000, failAtMs: 1, failure: 'none', rate: STREAM_RATE, graceMs: 30_000 });
  await waitLog(lab, 'a', (r) => r.msg === 'context-established' && r.peerUlid === LAB_ADDR.bP && Date.parse(r.ts) >= since);
  addAddress(lab, 'a', LAB_IF_R, LAB_ADDR_R.a);
  await waitLog(lab, 'b', (r) => r.msg === 'locator-set-updated' && r.peerUlid === LAB_ADDR.aP && (r.locators as string[]).includes(LAB_ADDR_R.a));
  await new Promise((res) => setTimeout(res, 1500)); // the stream runs meanwhile
  // The address the stream runs on now: A's P address (its ULID) unless a false exploration on a
  // busy machine moved the context to another pair meanwhile; that one is removed then.
  const gone = (await context(lab, 'a', LAB_ADDR.bP))?.pair.local;
  assert.ok(gone !== undefined, 'a context with B');
  const ifOf: Record<string, string> = { [LAB_ADDR.aP]: LAB_IF.P, [LAB_ADDR.aQ]: LAB_IF.Q, [LAB_ADDR_R.a]: LAB_IF_R };
  t.diagnostic(`the stream runs on ${gone} when it is removed`);

  const removedAt = Date.now();
  removeAddress(lab, 'a', ifOf[gone]!, gone);
  await waitLog(lab, 'a', (r) => r.msg === 'local locators changed' && (r.removed as string[]).includes(gone) && Date.parse(r.ts) >= removedAt);
  const movedA = await waitLog(lab, 'a', (r) => r.msg === 'locator-pair-changed' && r.peerUlid === LAB_ADDR.bP && Date.parse(r.ts) >= removedAt && pairOf(r).local !== gone);
  // B learns the withdrawal in one Update Request: A's ULID stays in A's set BROKEN (it names A in
  // the context); any other address leaves the set.
  const withdrawn = (l: { address: string; flags: number } | undefined): boolean => (gone === LAB_ADDR.aP ? l !== undefined && (l.flags & 1) === 1 : l === undefined);
  await waitFor(async () => {
    const b = await context(lab, 'b', LAB_ADDR.aP);
    return b !== undefined && withdrawn(b.peerLocators.find((l) => l.address === gone));
  }, 'B sees A\'s removed address withdrawn');
  t.diagnostic(`A sends from ${pairOf(movedA).local} ${Date.parse(movedA.ts) - removedAt} ms after the removal`);

  const r = await stream;
  t.diagnostic(`stall ${r.stall_ms} ms, ${r.bytes_sent} bytes; removed at +${removedAt - r.connectedAt} ms`);
  assert.equal(r.complete, true, 'the stream ended normally');
  assert.equal(r.corrupt, 0);
  assert.equal(r.bytes_verified, r.bytes_sent, 'every byte arrived once, in order, intact');
  const updates = log(lab, 'b').filter((x) => x.msg === 'locator-set-updated' && x.peerUlid === LAB_ADDR.aP && Date.parse(x.ts) >= removedAt);
  assert.equal(new Set(updates.map((x) => x.generation)).size, 1, 'one Update Request (one new generation) carried the withdrawal');
  const [a, b] = [await context(lab, 'a', LAB_ADDR.bP), await context(lab, 'b', LAB_ADDR.aP)];
  assert.ok(a && b, 'both contexts still up');
  assert.notEqual(a.pair.local, gone);
  assert.notEqual(b.pair.peer, gone);
  // Nothing A's host said about the lost address (its ICMPv6 "no route" for B's probes to it) opened another context with B.
  const others = log(lab, 'a').filter((x) => x.msg === 'context-initiated' && x.peerUlid === LAB_ADDR.bP && x.localUlid !== LAB_ADDR.aP);
  assert.deepEqual(others, [], 'no second context with B');
});

// A host given many addresses at once (a delegated prefix handed out to containers, a script's
// mistake): more than a Locator List holds. The daemon announces what a peer keeps (at most
// MAX_PEER_LOCATORS, its own ULID and usable ones first), never a message it cannot build, and
// goes on: the stream runs through both changes.
test('renumbering, many addresses at once: 120 addresses added in one go, then removed in one go; A announces at most a Locator List\'s bound, keeps running, no byte lost', { timeout: E2E_TIMEOUT_MS }, async (t) => {
  if (!needs(t, PREREQ)) return;
  const lab = await renumberLab(t);
  const since = Date.now();
  const stream = runStream(lab, { to: LAB_B_NAME, resolver: LAB_STUB, durationMs: 8000, failAtMs: 1, failure: 'none', rate: STREAM_RATE, graceMs: 30_000 });
  await waitLog(lab, 'a', (r) => r.msg === 'context-established' && r.peerUlid === LAB_ADDR.bP && Date.parse(r.ts) >= since);
  const many = Array.from({ length: 120 }, (_, i) => `2001:db8:3::1:${(i + 1).toString(16)}`);
  const addedAt = Date.now();
  nsIpBatch(lab.a, many.map((a) => ['addr', 'add', `${a}/64`, 'dev', LAB_IF_R, 'nodad']));
  const upd = await waitLog(lab, 'b', (r) => r.msg === 'locator-set-updated' && r.peerUlid === LAB_ADDR.aP && Date.parse(r.ts) >= addedAt && (r.locators as string[]).some((l) => many.includes(l)));
  const listed = upd.locators as string[];
  assert.ok(listed.length <= MAX_PEER_LOCATORS, `B keeps at most ${MAX_PEER_LOCATORS} of A's locators (${listed.length})`);
  assert.ok(listed.includes(LAB_ADDR.aP) && listed.includes(LAB_ADDR.aQ), 'A\'s HBA members are among those announced');
  const removedAt = Date.now();
  nsIpBatch(lab.a, many.map((a) => ['addr', 'del', `${a}/64`, 'dev', LAB_IF_R]));
  await waitLog(lab, 'b', (r) => r.msg === 'locator-set-updated' && r.peerUlid === LAB_ADDR.aP && Date.parse(r.ts) >= removedAt && !(r.locators as string[]).some((l) => many.includes(l)));
  const r = await stream;
  t.diagnostic(`stall ${r.stall_ms} ms, ${r.bytes_sent} bytes`);
  streamIntact(r);
  assert.ok((await status(lab, 'a')).engine.contexts.some((c) => c.peerUlid === LAB_ADDR.bP && c.state === 'ESTABLISHED'), 'A\'s daemon runs on, its context with B up');
});

// RFC 4862 §5.5.4: a deprecated address is still the host's, and when no preferred one is left it
// is what the host has to talk from. Every one of A's addresses deprecated at once (the prefixes
// being phased out, the new ones not there yet) is no reason to withdraw them all: A keeps them as
// locators (not BROKEN), so either end still re-homes when the link in use fails meanwhile.
test('renumbering, every address deprecated: A withdraws none of them (there is no other), and when link P fails meanwhile the stream re-homes to Q; no byte lost', { timeout: E2E_TIMEOUT_MS }, async (t) => {
  if (!needs(t, PREREQ)) return;
  const lab = await freshLab(t);
  await oneDaemon(t, lab, 'b');
  await oneDaemon(t, lab, 'a');
  const since = Date.now();
  let deprecatedAt = 0;
  const stream = runStream(lab, {
    to: LAB_B_NAME, resolver: LAB_STUB, durationMs: 9000, rate: STREAM_RATE, graceMs: 30_000, failure: 'blackhole', failAtMs: 3000,
    actions: [{ atMs: 1000, run: async () => {
      deprecatedAt = Date.now();
      deprecateAddress(lab, 'a', LAB_IF.P, LAB_ADDR.aP);
      deprecateAddress(lab, 'a', LAB_IF.Q, LAB_ADDR.aQ);
      await waitLog(lab, 'a', (r) => r.msg === 'local locators changed' && Date.parse(r.ts) >= deprecatedAt && [LAB_ADDR.aP, LAB_ADDR.aQ].every((x) => log(lab, 'a').some((y) => y.msg === 'local locators changed' && Date.parse(y.ts) >= deprecatedAt && (y.deprecated as string[]).includes(x))));
    } }],
  });
  await waitLog(lab, 'a', (r) => r.msg === 'context-established' && r.peerUlid === LAB_ADDR.bP && Date.parse(r.ts) >= since);
  const r = await stream;
  t.diagnostic(`stall ${r.stall_ms} ms, ${r.bytes_sent} bytes; deprecated at +${deprecatedAt - r.connectedAt} ms`);
  streamIntact(r);
  const b = await context(lab, 'b', LAB_ADDR.aP);
  assert.ok(b, 'B\'s context with A still up');
  assert.ok(b.peerLocators.some((l) => l.verified && (l.flags & 1) === 0), `B still has a locator of A to send to: ${JSON.stringify(b.peerLocators)}`);
  assert.equal(b.pair.peer, LAB_ADDR.aQ, 'B sends to A over Q');
});

// A host without a CGA key (B: an HBA set only) proves only its HBA members. An address it has
// beside them (an RFC 8981 privacy address, a second prefix) is nothing a peer can verify, and an
// Update Request listing it is refused whole (RFC 5533 §7.2, Error code 2): every later change
// (a deprecation, a link down, a removal) would then never reach its peers. So such an address is
// left out of what B announces, and B's deprecation of its address in use reaches A.
test('renumbering, a host without a CGA key: an address outside its HBA set is not announced, so its peers still take its Updates (a deprecation moves them off the address); no byte lost', { timeout: E2E_TIMEOUT_MS }, async (t) => {
  if (!needs(t, PREREQ)) return;
  const lab = await freshLab(t);
  const extra = '2001:db8:2::bb';
  addAddress(lab, 'b', LAB_IF.Q, extra);
  await oneDaemon(t, lab, 'b');
  await oneDaemon(t, lab, 'a');
  const since = Date.now();
  const stream = runStream(lab, { to: LAB_B_NAME, resolver: LAB_STUB, durationMs: 6000, failAtMs: 1, failure: 'none', rate: STREAM_RATE, graceMs: 30_000 });
  await waitLog(lab, 'a', (r) => r.msg === 'context-established' && r.peerUlid === LAB_ADDR.bP && Date.parse(r.ts) >= since);
  const deprecatedAt = Date.now();
  deprecateAddress(lab, 'b', LAB_IF.P, LAB_ADDR.bP);
  await waitLog(lab, 'b', (r) => r.msg === 'local locators changed' && Date.parse(r.ts) >= deprecatedAt && (r.deprecated as string[]).includes(LAB_ADDR.bP));
  await waitFor(async () => {
    const a = await context(lab, 'a', LAB_ADDR.bP);
    return a !== undefined && (a.peerLocators.find((l) => l.address === LAB_ADDR.bP)!.flags & 1) === 1;
  }, 'A takes B\'s Update: B\'s deprecated address flagged BROKEN');
  await waitFor(async () => (await context(lab, 'a', LAB_ADDR.bP))?.pair.peer !== LAB_ADDR.bP, 'A sends to another address of B than the deprecated one');
  const r = await stream;
  streamIntact(r);
  const a = (await context(lab, 'a', LAB_ADDR.bP))!;
  assert.equal(a.peerLocators.some((l) => l.address === extra), false, 'B never announced the address it cannot prove');
  assert.deepEqual(log(lab, 'a').filter((x) => x.msg === 'locator-unverified'), [], 'A refused none of B\'s Updates');
});

// An address that keeps coming and going (a flapping link, a DHCPv6 server fighting another) must
// not hold every other change back from DNS: a new prefix added meanwhile is published while the
// flapping goes on, and once it stops DNS holds what the host has. Nothing is torn down meanwhile.
test('renumbering, a flapping address: Q\'s address removed and added every ~100 ms; a new address on R reaches DNS while it flaps, DNS settles on the final set, the context lives on; no byte lost', { timeout: E2E_TIMEOUT_MS }, async (t) => {
  if (!needs(t, PREREQ)) return;
  const lab = await renumberLab(t, (l) => ({ dnsUpdate: labDnsUpdate(l) }));
  await waitFor(() => dnsLocators(lab).join() === [LAB_ADDR.aP, LAB_ADDR.aQ].join(), 'A publishes its record at start');
  const since = Date.now();
  const stream = runStream(lab, { to: LAB_B_NAME, resolver: LAB_STUB, durationMs: 8000, failAtMs: 1, failure: 'none', rate: STREAM_RATE, graceMs: 30_000 });
  await waitLog(lab, 'a', (r) => r.msg === 'context-established' && r.peerUlid === LAB_ADDR.bP && Date.parse(r.ts) >= since);
  const flap = spawn('ip', ['netns', 'exec', lab.a, 'sh', '-c',
    `while :; do ip -6 addr del ${LAB_ADDR.aQ}/64 dev ${LAB_IF.Q}; sleep 0.05; ip -6 addr add ${LAB_ADDR.aQ}/64 dev ${LAB_IF.Q} nodad; sleep 0.05; done`], { stdio: 'ignore' });
  let flapping = true;
  const stopFlap = async (): Promise<void> => {
    if (!flapping) return;
    flapping = false;
    flap.kill('SIGKILL');
    await new Promise((res) => flap.once('exit', res));
  };
  t.after(stopFlap);
  await waitLog(lab, 'a', (r) => r.msg === 'local locators changed' && (r.removed as string[]).includes(LAB_ADDR.aQ) && Date.parse(r.ts) >= since);
  addAddress(lab, 'a', LAB_IF_R, LAB_ADDR_R.a);
  await waitFor(() => dnsLocators(lab).includes(LAB_ADDR_R.a), 'the new address in DNS while Q\'s flaps');
  assert.equal(flap.exitCode, null, 'still flapping');
  await stopFlap();
  nsExec(lab.a, ['ip', '-6', 'addr', 'replace', `${LAB_ADDR.aQ}/64`, 'dev', LAB_IF.Q, 'nodad']); // present at the end
  await waitFor(() => dnsLocators(lab).sort().join() === [LAB_ADDR.aP, LAB_ADDR.aQ, LAB_ADDR_R.a].sort().join(), 'DNS settles on what A has');
  const r = await stream;
  streamIntact(r);
  assert.ok(await context(lab, 'a', LAB_ADDR.bP), 'A\'s context with B still up');
  assert.deepEqual(log(lab, 'a').filter((x) => x.msg === 'context-closed' || x.msg === 'context-failed'), [], 'no context torn down');
});

// Both ends renumber at once: each deprecates its P address (the contexts move to Q), then each
// loses its Q address. The deprecated P addresses are all either has now (usable again), and each
// end's Update Request saying so must reach the other although the pair it ran on is gone at both
// ends: it goes from a locator still usable to each of the peer's locators. The stream then goes on
// over P with no byte lost.
test('renumbering at both ends at once: A and B deprecate their P addresses, then both lose their Q addresses; each end\'s Update reaches the other, the stream goes on over P; no byte lost', { timeout: E2E_TIMEOUT_MS }, async (t) => {
  if (!needs(t, PREREQ)) return;
  const lab = await freshLab(t);
  await oneDaemon(t, lab, 'b');
  await oneDaemon(t, lab, 'a');
  const since = Date.now();
  const stream = runStream(lab, { to: LAB_B_NAME, resolver: LAB_STUB, durationMs: 10_000, failAtMs: 1, failure: 'none', rate: STREAM_RATE, graceMs: 30_000 });
  await waitLog(lab, 'a', (r) => r.msg === 'context-established' && r.peerUlid === LAB_ADDR.bP && Date.parse(r.ts) >= since);
  deprecateAddress(lab, 'a', LAB_IF.P, LAB_ADDR.aP);
  deprecateAddress(lab, 'b', LAB_IF.P, LAB_ADDR.bP);
  await waitFor(async () => (await context(lab, 'a', LAB_ADDR.bP))?.pair.local === LAB_ADDR.aQ && (await context(lab, 'b', LAB_ADDR.aP))?.pair.local === LAB_ADDR.bQ, 'both ends off their deprecated P addresses');
  const removedAt = Date.now();
  removeAddress(lab, 'a', LAB_IF.Q, LAB_ADDR.aQ);
  removeAddress(lab, 'b', LAB_IF.Q, LAB_ADDR.bQ);
  await waitFor(async () => {
    const [a, b] = [await context(lab, 'a', LAB_ADDR.bP), await context(lab, 'b', LAB_ADDR.aP)];
    return a?.pair.local === LAB_ADDR.aP && a.pair.peer === LAB_ADDR.bP && b?.pair.local === LAB_ADDR.bP && b.pair.peer === LAB_ADDR.aP;
  }, 'both ends on the P pair again');
  t.diagnostic(`both on P ${Date.now() - removedAt} ms after the Q addresses went`);
  const r = await stream;
  streamIntact(r);
  const [a, b] = [await context(lab, 'a', LAB_ADDR.bP), await context(lab, 'b', LAB_ADDR.aP)];
  assert.equal(a!.peerLocators.find((l) => l.address === LAB_ADDR.bP)!.flags & 1, 0, 'A took B\'s last Update: B\'s P address usable');
  assert.equal(b!.peerLocators.find((l) => l.address === LAB_ADDR.aP)!.flags & 1, 0, 'B took A\'s last Update: A\'s P address usable');
});

// The same address moved to another interface in one go (`ip -batch`: deleted and added within one
// reading): nothing changes for the locators or the peers, but `shim6 status` shows where it is now.
test('renumbering, an address moved to another interface in one go: no locator change, and status shows the address on its new interface', { timeout: E2E_TIMEOUT_MS }, async (t) => {
  if (!needs(t, PREREQ)) return;
  const lab = await renumberLab(t);
  interface Locators { daemon: { locators: { address: string; ifname: string }[] } }
  const ifnameOf = async (a: string): Promise<string | undefined> => ((await controlRequest(labDaemonFiles(lab, 'a').control, 'status')) as Locators).daemon.locators.find((l) => l.address === a)?.ifname;
  assert.equal(await ifnameOf(LAB_ADDR.aQ), LAB_IF.Q);
  const movedAt = Date.now();
  nsIpBatch(lab.a, [['addr', 'del', `${LAB_ADDR.aQ}/64`, 'dev', LAB_IF.Q], ['addr', 'add', `${LAB_ADDR.aQ}/64`, 'dev', LAB_IF_R, 'nodad']]);
  await waitFor(async () => (await ifnameOf(LAB_ADDR.aQ)) === LAB_IF_R, 'status shows A\'s Q address on R');
  assert.deepEqual(log(lab, 'a').filter((x) => x.msg === 'local locators changed' && Date.parse(x.ts) >= movedAt && ((x.removed as string[]).length > 0 || (x.added as string[]).length > 0)), [], 'no locator removed or added');
});

// RFC 4862 §5.4: an address whose Duplicate Address Detection has not ended (`tentative`, also an
// RFC 4429 optimistic one) is not ours yet, and one whose DAD failed (`dadfailed`) is another
// node's. A peer keeps every locator we list for the context's life, so neither may reach a Locator
// List, not even flagged BROKEN: an address added to a link that is administratively down (its DAD
// waits for the link) was announced BROKEN at once, and when the link came up it failed DAD — the
// peer had learned another host's address as ours.
test('renumbering with DAD on: an address added to a link that is down, or whose DAD still runs, reaches no Update Request until its DAD is done; one whose DAD fails (another host\'s address) never does', { timeout: E2E_TIMEOUT_MS }, async (t) => {
  if (!needs(t, PREREQ)) return;
  const lab = await renumberLab(t);
  const since = Date.now();
  const stream = runStream(lab, { to: LAB_B_NAME, resolver: LAB_STUB, durationMs: 6000, failAtMs: 1, failure: 'none', rate: STREAM_RATE, graceMs: 30_000 });
  await waitLog(lab, 'a', (r) => r.msg === 'context-established' && r.peerUlid === LAB_ADDR.bP && Date.parse(r.ts) >= since);
  for (const [k, v] of [['accept_dad', 1], ['dad_transmits', 2]] as const) nsExec(lab.a, ['sysctl', '-qw', `net.ipv6.conf.${LAB_IF_R}.${k}=${v}`]);
  const dadAddr = (address: string): void => { nsExec(lab.a, ['ip', '-6', 'addr', 'add', `${address}/64`, 'dev', LAB_IF_R]); };
  const flagsOf = (address: string): string => nsExec(lab.a, ['ip', '-6', 'addr', 'show', 'dev', LAB_IF_R]).stdout.split('\n').find((l) => l.includes(` ${address}/`)) ?? '';
  const announced = (address: string): boolean => log(lab, 'b').some((r) => r.msg === 'locator-set-updated' && r.peerUlid === LAB_ADDR.aP && (r.locators as string[]).includes(address));
  /** A new address on Q (no DAD): B's Update with it shows what A announced after all that came before. */
  const marker = async (address: string): Promise<string[]> => {
    addAddress(lab, 'a', LAB_IF.Q, address);
    return (await waitLog(lab, 'b', (r) => r.msg === 'locator-set-updated' && r.peerUlid === LAB_ADDR.aP && (r.locators as string[]).includes(address))).locators as string[];
  };
  const good = '2001:db8:3::1';
  const duplicate = LAB_ADDR_R.b; // B's address on R: A's DAD for it fails
  // Link R down on A: the addresses added to it wait there, tentative.
  nsExec(lab.a, ['ip', 'link', 'set', LAB_IF_R, 'down']);
  dadAddr(good);
  dadAddr(duplicate);
  assert.match(flagsOf(good), /tentative/);
  const first = await marker('2001:db8:2::71');
  assert.deepEqual(first.filter((a) => a === good || a === duplicate), [], `A announced addresses whose DAD has not run: ${first.join(' ')}`);
  // Link R up: DAD runs; the good address joins once its DAD is done, the duplicate never.
  nsExec(lab.a, ['ip', 'link', 'set', LAB_IF_R, 'up']);
  await waitFor(() => flagsOf(duplicate).includes('dadfailed'), 'A\'s DAD for B\'s address fails');
  await waitFor(() => announced(good), 'the good address announced once its DAD is done');
  assert.doesNotMatch(flagsOf(good), /tentative/, 'announced only after its DAD');
  // A DAD that runs long on a link that is up: not announced while it runs.
  nsExec(lab.a, ['sysctl', '-qw', `net.ipv6.conf.${LAB_IF_R}.dad_transmits=600`]);
  const slow = '2001:db8:3::2';
  dadAddr(slow);
  const second = await marker('2001:db8:2::72');
  assert.match(flagsOf(slow), /tentative/, 'still in DAD when the marker was announced');
  assert.ok(!second.includes(slow), `A announced an address whose DAD still runs: ${second.join(' ')}`);
  assert.ok(!announced(duplicate), 'B never learned the address whose DAD failed');
  const b = await context(lab, 'b', LAB_ADDR.aP);
  assert.ok(b, 'B\'s context with A up');
  assert.deepEqual(b.peerLocators.map((l) => l.address).filter((a) => a === duplicate || a === slow), []);
  assert.equal(b.peerLocators.find((l) => l.address === good)?.flags, 0, 'the good address usable at B');
  streamIntact(await stream);
});

// A link going down is one change of the locator set: one generation, one signed Locator List and
// one Update Request per peer. It was two when the down address moved in the list (behind a later
// address of the same rank, as every address but the ULID is without an HBA set): the down
// locator flagged BROKEN on its own, then the whole set, reordered.
test('renumbering, a link down (a CGA ULID, no HBA set): one new Locator List generation, one Update Request to the peer; the stream goes on', { timeout: E2E_TIMEOUT_MS }, async (t) => {
  if (!needs(t, PREREQ)) return;
  const lab = await renumberLab(t, () => ({ hba: undefined }));
  const ulid = (await waitLog(lab, 'a', (r) => r.msg === 'daemon ready')).ulid as string;
  const generation = async (): Promise<number> => ((await controlRequest(labDaemonFiles(lab, 'a').control, 'status')) as { engine: { localGeneration: number } }).engine.localGeneration;
  const flagsAtB = async (address: string): Promise<number | undefined> => (await context(lab, 'b', ulid))?.peerLocators.find((l) => l.address === address)?.flags;
  const since = Date.now();
  const stream = runStream(lab, { to: LAB_B_NAME, resolver: LAB_STUB, durationMs: 6000, failAtMs: 1, failure: 'none', rate: STREAM_RATE, graceMs: 30_000 });
  await waitLog(lab, 'a', (r) => r.msg === 'context-established' && r.peerUlid === LAB_ADDR.bP && Date.parse(r.ts) >= since);
  // A third address, after Q's in A's list: with Q down, Q's goes behind it.
  addAddress(lab, 'a', LAB_IF_R, LAB_ADDR_R.a);
  await waitFor(async () => (await flagsAtB(LAB_ADDR_R.a)) === 0, 'B learns A\'s R address');
  const before = await generation();
  const downAt = Date.now();
  nsExec(lab.a, ['ip', 'link', 'set', LAB_IF.Q, 'down']);
  await waitLog(lab, 'a', (r) => r.msg === 'local locators changed' && Date.parse(r.ts) >= downAt && (r.wentDown as string[]).includes(LAB_ADDR.aQ));
  await waitFor(async () => (await flagsAtB(LAB_ADDR.aQ)) === 1, 'B sees A\'s Q address BROKEN');
  await waitLog(lab, 'b', (r) => r.msg === 'locator-set-updated' && Date.parse(r.ts) >= downAt);
  assert.equal(await generation(), before + 1, 'one generation for the link down');
  const updates = log(lab, 'b').filter((r) => r.msg === 'locator-set-updated' && Date.parse(r.ts) >= downAt);
  assert.equal(updates.length, 1, `B took one Update: ${JSON.stringify(updates)}`);
  nsExec(lab.a, ['ip', 'link', 'set', LAB_IF.Q, 'up']);
  streamIntact(await stream);
});
