// `shim6 pcap --live` without a daemon: the capture's bounds (one at a time,
// seconds, octets, hostile params) and its records read by real tshark through
// contrib/wireshark/shim6-udp.lua — every message type named, checksums good,
// the synthesized UDP checksum good; a corrupted message shows a bad checksum
// (the oracle can fail); a capture whose control client is gone ends.
// test/e2e/observability.test.ts captures a live daemon.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { captureMethods, captureParams, LiveCapture, record, MAX_CAPTURE_BYTES, MAX_CAPTURE_SECONDS, PAYLOAD_SNAP } from '../../shim/daemon/capture.ts';
import { startControlServer } from '../../shim/daemon/control/server.ts';
import { controlRequest } from '../../shim/daemon/control/client.ts';
import type { PacketTap } from '../../shim/dataplane/engine-driver.ts';
import { demoPackets } from '../../shim/wire/demo.ts';
import { ControlError } from '../../shim/daemon/control/client.ts';
import { needs } from '../helpers/prereq.ts';
import { dissect, DISSECTOR, NAMES } from './dissect.ts';
import { fuzzParams } from '../helpers/rng.ts';
import { waitFor } from '../helpers/wait.ts';

function capture(): { cap: LiveCapture; tap: () => PacketTap | undefined } {
  let tap: PacketTap | undefined;
  return { cap: new LiveCapture((t) => { tap = t; }, () => 5533), tap: () => tap };
}

test('tshark with the dissector names every message of a capture, with good Shim6 and UDP checksums', async (t) => {
  if (!needs(t, { commands: ['tshark'] })) return;
  const dir = mkdtempSync(path.join(tmpdir(), 'capture-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const { cap, tap } = capture();
  const done = cap.start({ seconds: 60, maxBytes: 1 << 20, payload: true });
  const packets = demoPackets();
  for (const p of packets) {
    const isPayload = (p.shim6[2]! & 0x80) !== 0;
    // A payload goes out as the driver sends it: the payload header, then the upper-layer packet.
    if (isPayload) tap()!('out', p.src, p.dst, 5533, p.shim6.subarray(0, 8), p.shim6.subarray(8));
    else tap()!('in', p.dst, p.src, 40000, p.shim6);
  }
  assert.ok(cap.stop());
  assert.equal(tap(), undefined, 'the tap is removed when the capture ends');
  const r = await done;
  assert.equal(r.packets, packets.length);
  assert.equal(r.ended, 'stopped');
  const file = path.join(dir, 'live.pcap');
  writeFileSync(file, Buffer.from(r.pcap, 'base64'));
  const rows = dissect(file, ['shim6udp.p', 'shim6udp.type', 'shim6udp.checksum.status', 'udp.checksum.status', 'udp.srcport', 'udp.dstport', 'ipv6.src', '_ws.col.Info']);
  assert.equal(rows.length, packets.length);
  packets.forEach((p, i) => {
    const [pBit, type, status, udpStatus, sport, dport, src, info] = rows[i]!;
    const isPayload = (p.shim6[2]! & 0x80) !== 0;
    assert.equal(pBit, isPayload ? '1' : '0', `packet ${i + 1}`);
    assert.equal(udpStatus, '1', `packet ${i + 1}: UDP checksum good`);
    if (isPayload) {
      assert.deepEqual([sport, dport, src], ['5533', '5533', p.src]);
      return;
    }
    const code = p.shim6[2]! & 0x7f;
    assert.equal(type, String(code), `packet ${i + 1}`);
    assert.equal(info, NAMES[code], `packet ${i + 1}: named`);
    assert.equal(status, '1', `packet ${i + 1}: Shim6 checksum good`);
    assert.deepEqual([sport, dport, src], ['40000', '5533', p.src], `packet ${i + 1}: the peer's port and locator`);
  });

  // A flipped octet in a message: the dissector says the checksum is bad.
  const bad = packets.find((p) => (p.shim6[2]! & 0x7f) === 1)!;
  const bytes = bad.shim6.slice();
  bytes[12]! ^= 0xff;
  const hdr = Buffer.from(r.pcap, 'base64').subarray(0, 24);
  const badFile = path.join(dir, 'bad.pcap');
  writeFileSync(badFile, Buffer.concat([hdr, record(Date.now(), 'out', bad.src, 5533, bad.dst, 5533, bytes, undefined, Infinity)]));
  assert.deepEqual(dissect(badFile, ['shim6udp.type', 'shim6udp.checksum.status']), [['1', '2']]);
});

test('capture bounds: one at a time, octets, payload only when asked, payload cut after PAYLOAD_SNAP octets', async () => {
  const { cap, tap } = capture();
  const [i1, payload] = [demoPackets().find((p) => p.shim6[2] === 1)!, demoPackets().find((p) => (p.shim6[2]! & 0x80) !== 0)!];
  const first = cap.start({ seconds: 60, maxBytes: 24 + 3 * (16 + 48 + i1.shim6.length), payload: false });
  await assert.rejects(cap.start({ seconds: 1, maxBytes: 1000, payload: false }), (e: unknown) => e instanceof ControlError && e.code === 'ECAPTURE_BUSY');
  tap()!('out', i1.src, i1.dst, 5533, payload.shim6.subarray(0, 8), new Uint8Array(1000));
  for (let k = 0; k < 10; k++) tap()?.('out', i1.src, i1.dst, 5533, i1.shim6);
  const r = await first;
  assert.equal(r.ended, 'max-bytes');
  assert.equal(r.packets, 3, 'payload left out, then as many messages as fit');
  assert.ok(r.bytes <= 24 + 3 * (16 + 48 + i1.shim6.length));
  assert.equal(cap.busy, false);

  const second = cap.start({ seconds: 60, maxBytes: 1 << 20, payload: true });
  tap()!('out', i1.src, i1.dst, 5533, payload.shim6.subarray(0, 8), new Uint8Array(1000));
  cap.stop();
  const file = Buffer.from((await second).pcap, 'base64');
  const caplen = file.readUInt32LE(24 + 8);
  const origlen = file.readUInt32LE(24 + 12);
  assert.deepEqual([caplen, origlen], [48 + PAYLOAD_SNAP, 48 + 8 + 1000]);

  // The capture's timer does not hold the process (a stopping daemon exits): this test holds it.
  const hold = setInterval(() => undefined, 1000);
  try {
    const third = cap.start({ seconds: 1, maxBytes: 1000, payload: false });
    assert.equal((await third).ended, 'time');
  } finally {
    clearInterval(hold);
  }
});

test('a capture whose control client is gone (killed without capture-stop) ends: tap removed, records dropped, the next capture accepted', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'capture-gone-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const { cap, tap } = capture();
  t.after(() => { cap.stop(); });
  const server = await startControlServer(path.join(dir, 'control.sock'), captureMethods(cap));
  t.after(() => server.close());

  // What `shim6 pcap --live` sends, at the bounds: an hour, 32 MiB.
  const c = net.connect(server.path);
  t.after(() => c.destroy());
  await new Promise<void>((r) => c.once('connect', () => r()));
  c.write(JSON.stringify({ id: 1, method: 'capture', params: { seconds: MAX_CAPTURE_SECONDS, maxBytes: MAX_CAPTURE_BYTES, payload: true } }) + '\n');
  await waitFor(() => cap.busy, 'the capture to start');
  assert.ok(tap(), 'the tap is installed');

  // The client is SIGKILLed (or its terminal hung up): the socket closes, no capture-stop is sent.
  c.destroy();
  await waitFor(() => !cap.busy, 'the capture to end with its client');
  assert.equal(tap(), undefined, 'the tap is removed from the packet path');

  // The slot is free: another client's capture starts (no ECAPTURE_BUSY) and is stopped as usual.
  const next = controlRequest(server.path, 'capture', { seconds: 60 }, 30_000) as Promise<{ ended: string }>;
  await waitFor(() => cap.busy, 'the next capture to start');
  assert.deepEqual(await controlRequest(server.path, 'capture-stop'), { stopped: true });
  assert.equal((await next).ended, 'stopped');
});

test('capture params from the control socket are checked (hostile input: typed errors)', (t) => {
  assert.deepEqual(captureParams({}), { seconds: 10, maxBytes: 8 * 1024 * 1024, payload: false });
  for (const bad of [{ seconds: 0 }, { seconds: MAX_CAPTURE_SECONDS + 1 }, { seconds: 1.5 }, { seconds: '5' }, { maxBytes: 1e12 }, { payload: 'yes' }]) {
    assert.throws(() => captureParams(bad), (e: unknown) => e instanceof ControlError && e.code === 'EPARAMS', JSON.stringify(bad));
  }
  fc.assert(fc.property(fc.dictionary(fc.constantFrom('seconds', 'maxBytes', 'payload', 'x'), fc.anything()), (p) => {
    try {
      const r = captureParams(p);
      assert.ok(r.seconds >= 1 && r.seconds <= MAX_CAPTURE_SECONDS && r.maxBytes >= 1);
    } catch (e) { if (!(e instanceof ControlError)) throw e; }
  }), fuzzParams(t, { numRuns: 2000 }));
});

test('the dissector on hostile datagrams: every one dissected without a Lua error (fuzzed, fixed seed)', async (t) => {
  if (!needs(t, { commands: ['tshark'] })) return;
  const dir = mkdtempSync(path.join(tmpdir(), 'capture-fuzz-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // Random octets, and real messages cut short or with a random Hdr Ext Len and type.
  const real = demoPackets().map((p) => p.shim6);
  const datagram = fc.oneof(
    fc.uint8Array({ minLength: 0, maxLength: 200 }),
    fc.tuple(fc.constantFrom(...real), fc.nat(200)).map(([m, n]) => m.slice(0, n)),
    fc.tuple(fc.constantFrom(...real), fc.nat(255), fc.nat(127)).map(([m, len, type]) => { const c = m.slice(); c[1] = len; c[2] = type; return c; }),
  );
  const samples = fc.sample(datagram, fuzzParams(t, { seed: 5533, numRuns: 400 }));
  // One capture of at most 400 datagrams at a time: more (SHIM6_FUZZ_SCALE) would fill the capture's 1 MiB.
  for (let at = 0; at < samples.length; at += 400) {
    const chunk = samples.slice(at, at + 400);
    const { cap, tap } = capture();
    const done = cap.start({ seconds: 60, maxBytes: 1 << 20, payload: true });
    for (const d of chunk) tap()!('in', '2001:db8::1', '2001:db8::2', 5533, d);
    cap.stop();
    const file = path.join(dir, 'fuzz.pcap');
    writeFileSync(file, Buffer.from((await done).pcap, 'base64'));
    const r = spawnSync('tshark', ['-r', file, '-X', `lua_script:${DISSECTOR}`, '-V'], { encoding: 'utf8', timeout: 120_000, maxBuffer: 64 << 20 });
    assert.equal(r.status, 0, r.stderr);
    assert.doesNotMatch(r.stdout + r.stderr, /Lua Error/);
    assert.equal((r.stdout.match(/^Frame \d+:/gm) ?? []).length, chunk.length);
  }
});
