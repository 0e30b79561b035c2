// tshark as an independent oracle of the demo pcap (written by the real CLI).
// Debian's tshark 4.0.17 dissects control messages one octet early (docs/wire.md "pcap"):
// the canary I1 (tag 0x123456789abc, nonce 0x11111111) shows checksum 0x9e73 on a
// correct build and 0x009e on the buggy one. Trustworthy on both: P bit, type,
// length, checksum status. Where the canary passes, no packet may be malformed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { needs } from '../helpers/prereq.ts';
import { shim6 } from '../helpers/cli.ts';
import { demoPackets } from '../../shim/wire/demo.ts';

const CHECKSUM_GOOD = '1'; // Wireshark PROTO_CHECKSUM_E_GOOD

test('tshark reads the demo pcap: canary, then type, length and checksum status of every packet', (t) => {
  if (!needs(t, { commands: ['tshark'] })) return;
  const dir = mkdtempSync(path.join(tmpdir(), 'wire-tshark-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'demo.pcap');
  const w = shim6(['pcap', '--demo', file]);
  assert.equal(w.status, 0, w.stderr);

  const r = spawnSync('tshark', ['-r', file, '-T', 'fields', '-E', 'separator=/t', '-E', 'occurrence=f',
    '-e', 'shim6.p', '-e', 'shim6.type', '-e', 'shim6.len', '-e', 'shim6.checksum', '-e', 'shim6.checksum.status', '-e', '_ws.malformed',
    '-e', 'ipv6.nxt', '-e', 'ipv6.plen', '-e', 'ipv6.src', '-e', 'ipv6.dst'],
  { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  const rows = r.stdout.trimEnd().split('\n').map((l) => l.split('\t'));

  // The canary decides how far tshark can be trusted.
  const canaryChecksum = rows[0]?.[3];
  assert.ok(canaryChecksum === '0x9e73' || canaryChecksum === '0x009e', `unexpected canary checksum ${canaryChecksum}: not a Shim6 dissector we know`);
  const trustworthy = canaryChecksum === '0x9e73';
  t.diagnostic(trustworthy ? 'tshark dissects Shim6 correctly: asserting no malformed packets' : 'tshark has the one-octet-early Shim6 bug: asserting P, type, length and checksum status only');

  const packets = demoPackets();
  assert.equal(rows.length, packets.length);
  packets.forEach(({ shim6: bytes, src, dst }, i) => {
    const [p, type, len, , status, malformed, nxt, plen, ipSrc, ipDst] = rows[i]!;
    // The IPv6 layer is dissected correctly on every build.
    assert.deepEqual([nxt, plen, ipSrc, ipDst], ['140', String(bytes.length), src, dst], `packet ${i + 1}: IPv6 header`);
    const isPayload = (bytes[2]! & 0x80) !== 0;
    assert.equal(p, isPayload ? '1' : '0', `packet ${i + 1}: P bit`);
    assert.equal(len, String(bytes[1]), `packet ${i + 1}: Hdr Ext Len`);
    if (isPayload) return;
    assert.equal(type, String(bytes[2]! & 0x7f), `packet ${i + 1}: type`);
    assert.equal(status, CHECKSUM_GOOD, `packet ${i + 1}: checksum status`);
    if (trustworthy) assert.equal(malformed ?? '', '', `packet ${i + 1} (type ${type}) is malformed for tshark`);
  });
});

test('tshark flags a corrupted checksum as bad (the oracle can fail)', (t) => {
  if (!needs(t, { commands: ['tshark'] })) return;
  const dir = mkdtempSync(path.join(tmpdir(), 'wire-tshark-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'bad.pcap');
  assert.equal(shim6(['pcap', '--demo', file]).status, 0);
  // Flip a nonce bit of the first packet (the I1 at record offset 24 + 16 + 40): its checksum no longer matches.
  const pcap = readFileSync(file);
  pcap[24 + 16 + 40 + 15]! ^= 1;
  writeFileSync(file, pcap);
  const r = spawnSync('tshark', ['-r', file, '-c', '1', '-T', 'fields', '-e', 'shim6.checksum.status'], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), '0'); // PROTO_CHECKSUM_E_BAD
});
