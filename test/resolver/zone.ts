/**
 * The test zone the resolver tests serve from a real Knot: peers with and
 * without capability records, CNAME chains, an invalid record, a TXT-fallback
 * host, an answer too big for UDP, and unknown types.
 */
import { capLine, capRdataHex } from './harness.ts';

export const ZONE = 'example.';

/** Peer with a valid record: ULID is its first AAAA, two locators. */
export const PEER = { name: 'peer.example.', ulid: '2001:db8:1::10', locators: ['2001:db8:1::10', '2001:db8:2::10'] };

export function zoneText(): string {
  const peerHex = capRdataHex(PEER.ulid, PEER.locators);
  const txtHex = capRdataHex('2001:db8:5::1', ['2001:db8:5::1', '2001:db8:6::1']);
  const lines = [
    '$ORIGIN example.',
    '$TTL 300',
    '@ 300 IN SOA ns.example. admin.example. 1 3600 600 86400 60',
    '@ 300 IN NS ns.example.',
    'ns 300 IN A 127.0.0.1',
    'peer 300 IN AAAA 2001:db8:1::10',
    'peer 300 IN AAAA 2001:db8:2::10',
    'peer 300 IN A 192.0.2.10',
    capLine('peer', 120, peerHex),
    'alias 300 IN CNAME alias2',
    'alias2 300 IN CNAME peer',
    'plain 300 IN AAAA 2001:db8:3::1',
    'plain 300 IN A 192.0.2.3',
    'bad 300 IN AAAA 2001:db8:4::1',
    // ULID not in the AAAA set: must be ignored.
    capLine('bad', 300, capRdataHex('2001:db8:9::9', ['2001:db8:4::1'])),
    'badver 300 IN AAAA 2001:db8:7::1',
    // Version 2: a version-1 reader ignores it.
    capLine('badver', 300, capRdataHex('2001:db8:7::1', ['2001:db8:7::1'], { version: 2 })),
    'txtpeer 300 IN AAAA 2001:db8:5::1',
    `_shim6.txtpeer 300 IN TXT "v=shim6cap1 b64=${Buffer.from(txtHex, 'hex').toString('base64')}"`,
    'unknown 300 IN TYPE65432 \\# 4 deadbeef',
    'short 5 IN AAAA 2001:db8:8::1',
    // A valid record with 900 octets of parameters (port 6000, an unknown key): the cache keeps its ULID and locators only.
    'params 300 IN AAAA 2001:db8:a::1',
    capLine('params', 300, capRdataHex('2001:db8:a::1', ['2001:db8:a::1', '2001:db8:b::1'], { params: Uint8Array.from([0, 2, 0, 2, 0x17, 0x70, 0, 9, 0x03, 0x84, ...new Array<number>(900).fill(0xab)]) })),
  ];
  // > 1232 octets of TXT: Knot sets TC over UDP.
  for (let i = 0; i < 12; i++) lines.push(`big 300 IN TXT "${String(i).padStart(2, '0')}${'x'.repeat(180)}"`);
  return lines.join('\n') + '\n';
}
