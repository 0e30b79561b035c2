// The daemon's dnsUpdate publisher and the order in which a server applies its
// updates (RFC 2136 §2.4 prerequisites, shim/daemon/dns-update.ts), against
// real Knot and BIND — through a UDP relay of the test's own where an update
// must be held back and delivered late, as a paused server does with what
// queued in its sockets:
// * another writer changed the record: the publisher's update is refused
//   (NXRRSET), it reads the record again and resends at once;
// * the record appeared between the publisher's read and its update: YXRRSET,
//   the same;
// * an unanswered update delivered after the set went back to what it was (the
//   one case a prerequisite cannot refuse): the record is read back once the
//   update's window has passed, and corrected;
// * that read-back comes when the window has passed however the wall clock
//   steps meanwhile;
// and, against a server that fails every prerequisite, the publisher gives up
// after PREREQ_ROUNDS reads and backs off like for any other failure.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { needs } from '../helpers/prereq.ts';
import { randomTsigSecret, startAuthDns, type AuthDnsKind, kdigShort, recordLocators } from '../helpers/authdns.ts';
import { tempDir, writeZone, zoneHeader } from '../zone/zonefile.ts';
import { waitFor } from '../helpers/wait.ts';
import { Logger } from '../../shim/log.ts';
import { DnsPublisher, PREREQ_ROUNDS, type DnsUpdateConfig } from '../../shim/daemon/dns-update.ts';
import { bootTimers } from '../helpers/boot-timers.ts';
import { buildHostRecord } from '../../zone-tools/record-input.ts';
import { sendUpdate } from '../../zone-tools/update.ts';
import { parseTsigKeyFile } from '../../zone-tools/tsig-key.ts';
import { decodeMessage, encodeMessage, FLAG_AA, FLAG_QR, Opcode, opcodeOf } from '../../zone-tools/dns-message.ts';

const Z = 'ord.test.';
const NAME = 'a.ord.test.';
const ULID = '2001:db8:1::a';
const Q = '2001:db8:2::a';
const R = '2001:db8:3::a';

/** The locators of the capability record kdig sees now ([] when none). */
const published = (port: number): string[] => recordLocators(kdigShort(port, [NAME, 'TYPE65300'])[0]);

function logger(onLine: (l: Record<string, unknown>) => void = () => {}): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = { write: (l: string) => { const r = JSON.parse(l) as Record<string, unknown>; lines.push(r); onLine(r); } };
  return { log: new Logger({ format: 'json', sink }), lines };
}

/**
 * A UDP relay on 127.0.0.1 in front of `upstream`: each client port gets a
 * socket of its own towards the server, answers go back to the port they came
 * for. With `holdUpdates`, UPDATE messages are kept until `release()`.
 */
class Relay {
  readonly sock: Socket = createSocket('udp4');
  private readonly toServer = new Map<string, Socket>();
  holdUpdates = false;
  readonly held: { msg: Buffer; from: RemoteInfo }[] = [];
  /** Opcode of every message from the client, in arrival order. */
  readonly seen: number[] = [];
  constructor(private readonly upstreamPort: number) {
    this.sock.on('message', (msg, from) => {
      const opcode = msg.length >= 4 ? opcodeOf((msg[2]! << 8) | msg[3]!) : -1;
      this.seen.push(opcode);
      if (this.holdUpdates && opcode === Opcode.UPDATE) this.held.push({ msg, from });
      else this.forward(msg, from);
    });
  }
  async start(): Promise<number> {
    await new Promise<void>((resolve) => this.sock.bind(0, '127.0.0.1', resolve));
    return this.sock.address().port;
  }
  private forward(msg: Buffer, from: RemoteInfo): void {
    const k = `${from.address}:${from.port}`;
    let s = this.toServer.get(k);
    if (!s) {
      s = createSocket('udp4');
      s.on('message', (answer) => this.sock.send(answer, from.port, from.address));
      s.on('error', () => {});
      this.toServer.set(k, s);
    }
    s.send(msg, this.upstreamPort, '127.0.0.1');
  }
  release(): number {
    const n = this.held.length;
    for (const h of this.held.splice(0)) this.forward(h.msg, h.from);
    return n;
  }
  close(): void {
    for (const s of this.toServer.values()) s.close();
    this.sock.close();
  }
}

async function setup(t: TestContext, kind: AuthDnsKind) {
  const secret = randomTsigSecret();
  const dns = await startAuthDns({ server: kind, zones: [{ name: Z, text: zoneHeader(Z) }], tsig: { name: 'ord-key.', secret }, allowUpdate: true });
  t.after(() => dns.stop());
  const keyFile = writeZone(tempDir(t), 'ord.key', `ord-key:${secret}\n`);
  const relay = new Relay(dns.port);
  const relayPort = await relay.start();
  t.after(() => relay.close());
  const cfg: DnsUpdateConfig = { server: `127.0.0.1:${relayPort}`, zone: Z, name: NAME, key: keyFile, keyName: undefined, minInterval: 0, aaaa: true, ttl: 60 };
  /** Another writer: an update of the record without a prerequisite, straight to the server. */
  const otherWriter = (locators: string[]) => sendUpdate({ host: '127.0.0.1', port: dns.port }, Z, buildHostRecord({ name: NAME, ulid: locators[0]!, locators, ttl: 60 }), parseTsigKeyFile(`ord-key:${secret}`, 'inline'));
  return { dns, relay, cfg, otherWriter };
}

/** An update of [ULID] the relay holds (no answer: it times out), then the set goes back to [ULID, Q], answered. */
async function unansweredThenBack(p: DnsPublisher, relay: { holdUpdates: boolean }): Promise<void> {
  relay.holdUpdates = true;
  p.update([ULID]);
  await waitFor(() => p.status().failures === 1, 'the update times out');
  relay.holdUpdates = false;
  p.update([ULID, Q]);
  await waitFor(() => p.status().state === 'idle' && p.status().updates === 2, 'the old set again, NOERROR');
}

/** A publisher (`inDoubtMs` of `windowMs`) whose first set, ULID and Q, is published and settled. */
async function publishedFirst(t: TestContext, kind: AuthDnsKind, windowMs: number) {
  const { dns, relay, cfg } = await setup(t, kind);
  const { log, lines } = logger();
  const p = new DnsPublisher(cfg, { ulid: ULID, hba: undefined, cgaUlid: false }, log, { inDoubtMs: windowMs });
  t.after(() => p.stop());
  p.update([ULID, Q]);
  await waitFor(() => published(dns.port).join() === [ULID, Q].join(), 'the first set');
  await waitFor(() => p.status().state === 'idle', 'the publisher settles');
  return { dns, relay, p, lines };
}

for (const kind of ['knot', 'bind'] as AuthDnsKind[]) {
  test(`dnsUpdate against ${kind}: another writer changed the record (NXRRSET), or made it between our read and our update (YXRRSET): the publisher reads it again and resends at once`, { timeout: 120_000 }, async (t) => {
    if (!needs(t, { root: true, commands: [kind === 'knot' ? 'knotd' : 'named', 'kdig'] })) return;
    const { dns, relay, cfg, otherWriter } = await setup(t, kind);

    // YXRRSET: the publisher reads "none", its update is held, the record appears, the update goes on.
    const { log, lines } = logger();
    const p = new DnsPublisher(cfg, { ulid: ULID, hba: undefined, cgaUlid: false }, log);
    t.after(() => p.stop());
    relay.holdUpdates = true;
    p.update([ULID, Q]);
    await waitFor(() => relay.held.length === 1, 'the first update reaches the relay');
    assert.deepEqual(relay.seen.slice(0, 2), [Opcode.QUERY, Opcode.UPDATE], 'the publisher read the record before its first update');
    await otherWriter([R]);
    relay.holdUpdates = false;
    relay.release();
    await waitFor(() => published(dns.port).join() === [ULID, Q].join(), 'the publisher\'s set in DNS');
    await waitFor(() => p.status().state === 'idle', 'the publisher settles');
    assert.ok(lines.some((l) => l.msg === 'dns prerequisite failed, reading the record again' && l.rcode === 'YXRRSET'), 'YXRRSET, then read again');
    assert.ok(p.status().prerequisiteFailures >= 1);
    assert.deepEqual(kdigShort(dns.port, [NAME, 'AAAA']), [ULID, Q].sort());

    // NXRRSET: the record changed behind the publisher's back; its next update is refused, read, resent.
    await otherWriter([R]);
    assert.deepEqual(published(dns.port), [R]);
    const before = p.status();
    const seenBefore = relay.seen.length;
    p.update([ULID, Q, R]);
    await waitFor(() => published(dns.port).join() === [ULID, Q, R].join(), 'the new set in DNS');
    await waitFor(() => p.status().state === 'idle', 'the publisher settles');
    const after = p.status();
    assert.equal(after.prerequisiteFailures, before.prerequisiteFailures + 1, 'one prerequisite failure');
    assert.equal(after.failures, before.failures, 'resent at once: no failure, no back-off');
    assert.deepEqual(relay.seen.slice(seenBefore), [Opcode.UPDATE, Opcode.QUERY, Opcode.UPDATE], 'update refused, read, update');
    assert.ok(lines.some((l) => l.msg === 'dns prerequisite failed, reading the record again' && l.rcode === 'NXRRSET'));
    assert.ok(lines.some((l) => l.msg === 'dns updated' && l.prerequisiteFailures === 1));
    assert.deepEqual(after.published, [ULID, Q, R]);
    assert.deepEqual(kdigShort(dns.port, [NAME, 'AAAA']), [ULID, Q, R].sort());
  });

  test(`dnsUpdate against ${kind}: an unanswered update delivered late after the set went back to what it was is found by reading the record back, and corrected`, { timeout: 120_000 }, async (t) => {
    if (!needs(t, { root: true, commands: [kind === 'knot' ? 'knotd' : 'named', 'kdig'] })) return;
    const WINDOW_MS = 12_000;
    const { dns, relay, p, lines } = await publishedFirst(t, kind, WINDOW_MS);
    assert.equal(p.status().verifyAt, null, 'every update answered: nothing to read back');

    // An update that gets no answer (held by the relay: a paused server), then the set goes back.
    await unansweredThenBack(p, relay);
    const verifyAt = p.status().verifyAt;
    assert.ok(verifyAt !== null, 'an unanswered update may still land: a read-back is due');
    // The held update ("the record is [ULID, Q]" → [ULID]) now reaches the server and holds (a retry of it,
    // held too if the test was slow to let the relay pass, is refused: the first changed the record).
    assert.ok(relay.release() >= 1);
    assert.ok(Date.now() < Date.parse(verifyAt), 'delivered before the read-back (else this test shows nothing)');
    await waitFor(() => published(dns.port).join() === ULID, 'the late update applies: the case a prerequisite cannot refuse');
    assert.deepEqual(p.status().published, [ULID, Q], 'the publisher cannot know yet');
    await waitFor(() => published(dns.port).join() === [ULID, Q].join(), 'read back after the window, and corrected');
    await waitFor(() => p.status().state === 'idle' && p.status().verifyAt === null, 'the publisher settles');
    assert.ok(lines.some((l) => l.msg === 'dns record changed after an unanswered update'));
    assert.deepEqual(kdigShort(dns.port, [NAME, 'AAAA']), [ULID, Q].sort());
    t.diagnostic(`read back at ${verifyAt}; updates ${p.status().updates}, failures ${p.status().failures}`);
  });
}

// The read-back's time is a duration after the unanswered update (the server refuses it once its
// TSIG time is past the fudge: 2 × fudge of elapsed time at most, whatever our wall clock says), so
// a step of the wall clock (NTP, `date`) must not move it: back an hour, the record went unchecked
// for an hour; forward, it was read back while the update could still land.
test('dnsUpdate against knot: the wall clock stepped back an hour after an unanswered update does not put off reading the record back', { timeout: 120_000 }, async (t) => {
  if (!needs(t, { root: true, commands: ['knotd', 'kdig'] })) return;
  const WINDOW_MS = 4_000;
  const { dns, relay, p, lines } = await publishedFirst(t, 'knot', WINDOW_MS);
  await unansweredThenBack(p, relay);
  assert.ok(p.status().verifyAt !== null, 'an unanswered update may still land: a read-back is due');
  // Its timer counts a suspend (a CLOCK_BOOTTIME timerfd, which the kernel fires at the resume): a
  // Node timer would wait out the rest of the window awake.
  assert.ok(bootTimers().some((x) => x.armed > 0 && x.armed <= WINDOW_MS), `the read-back's timer: ${JSON.stringify(bootTimers())}`);
  // The held update is never delivered; the wall clock steps back an hour (this process's Date.now).
  const wall = Date.now;
  Date.now = () => wall() - 3_600_000;
  t.after(() => { Date.now = wall; });
  // verifyAt goes at the window's end, before the read-back's answer is in: wait for that.
  await waitFor(() => lines.some((l) => l.msg === 'dns record verified'), 'the record read back after the window and found as published', WINDOW_MS + 30_000);
  assert.equal(p.status().verifyAt, null);
  assert.deepEqual(published(dns.port), [ULID, Q]);
});

/** A server that answers every query with an empty authoritative NOERROR and every update with YXRRSET (unsigned). */
async function contrary(t: TestContext): Promise<{ port: number; seen: number[] }> {
  const sock = createSocket('udp4');
  const seen: number[] = [];
  sock.on('message', (msg, from) => {
    const m = decodeMessage(msg);
    const op = opcodeOf(m.flags);
    seen.push(op);
    const answer = { id: m.id, flags: FLAG_QR | (op << 11) | FLAG_AA | (op === Opcode.UPDATE ? 7 : 0), questions: m.questions, answers: [], authorities: [], additionals: [] };
    sock.send(encodeMessage(answer), from.port, from.address);
  });
  await new Promise<void>((resolve) => sock.bind(0, '127.0.0.1', resolve));
  t.after(() => sock.close());
  return { port: sock.address().port, seen };
}

test('dnsUpdate: a server that fails every prerequisite gets PREREQ_ROUNDS reads and updates, then the publisher backs off like for any failure', async (t) => {
  const fake = await contrary(t);
  const keyFile = writeZone(tempDir(t), 'k.key', `k:${randomTsigSecret()}\n`);
  const atFailure: number[][] = [];
  const { log, lines } = logger((l) => { if (l.msg === 'dns update failed') atFailure.push([...fake.seen]); });
  const p = new DnsPublisher({ server: `127.0.0.1:${fake.port}`, zone: Z, name: NAME, key: keyFile, keyName: undefined, minInterval: 0, aaaa: false, ttl: 60 }, { ulid: ULID, hba: undefined, cgaUlid: false }, log);
  t.after(() => p.stop());
  p.update([ULID]);
  await waitFor(() => p.status().failures >= 1, 'the publisher gives up');
  const round = Array.from({ length: PREREQ_ROUNDS }, () => [Opcode.QUERY, Opcode.UPDATE]).flat();
  assert.deepEqual(atFailure[0], round, `${PREREQ_ROUNDS} reads and updates, no more`);
  const s = p.status();
  assert.equal(s.state, 'failing');
  assert.equal(s.prerequisiteFailures, PREREQ_ROUNDS);
  assert.equal(s.lastError?.code, 'EDNS_YXRRSET');
  assert.equal(s.lastError?.rcode, 'YXRRSET');
  assert.match(s.lastError?.message ?? '', new RegExp(`${PREREQ_ROUNDS} times in a row after reading the record again`));
  assert.equal(s.lastError?.retryInMs, 1000);
  assert.ok(lines.some((l) => l.msg === 'dns update failed' && l.prerequisiteFailures === PREREQ_ROUNDS && l.step === 'update'), 'logged, with the count');
  await waitFor(() => p.status().failures >= 2, 'the retry after the back-off fails the same way');
  assert.deepEqual(atFailure[1], [...round, ...round]);
  assert.equal(p.status().lastError?.retryInMs, 2000, 'and backs off further');
});
