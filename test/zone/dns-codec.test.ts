// The zone tools' own DNS pieces: message codec round trips, TSIG sign/verify
// (and every way a response can fail it), key file formats, and seeded fuzzing
// of everything that reads bytes from a server or text from a user: decoders
// throw only their typed error, the zone checker never throws.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { createHmac } from 'node:crypto';
import dgram from 'node:dgram';
import { exchange, TransportError } from '../../zone-tools/dns-transport.ts';
import { lookup as dnsLookup } from 'node:dns/promises';
import net from 'node:net';
import {
  decodeMessage, decodeName, decodeTxtRdata, DnsFormatError, encodeMessage, encodeName, encodeRecord, encodeTxtRdata, RrClass, RrType,
} from '../../zone-tools/dns-message.ts';
import { decodeTsigRdata, encodeTsigRdata, signMessage, verifyResponse, type TsigKey } from '../../zone-tools/tsig.ts';
import { parseTsigKeyFile } from '../../zone-tools/tsig-key.ts';
import { buildUpdate } from '../../zone-tools/update.ts';
import { buildHostRecord } from '../../zone-tools/record-input.ts';
import { checkZoneText } from '../../zone-tools/zone-check.ts';
import { parseInventory } from '../../zone-tools/inventory.ts';
import { parseServer } from '../../zone-tools/dns-transport.ts';
import { UsageError } from '../../shim/errors.ts';
import { systemServer } from '../../zone-tools/commands-dns.ts';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fuzzParams, fuzzRuns, fuzzSeed, SimRng } from '../helpers/rng.ts';

/** Seeded floats in [0, 1) (test/helpers/rng.ts). */
function rng(seed: number): () => number {
  const r = new SimRng(seed);
  return () => r.float();
}

const KEY: TsigKey = { name: 'k.example.', algorithm: 'hmac-sha256', secret: new Uint8Array(32).fill(7) };
const HOST = buildHostRecord({ name: 'h.example.', ulid: '2001:db8::1', locators: ['2001:db8::1', '2001:db8:1::1/1/2/transient'], txt: true });

test('names: escapes, compression pointers, loops', () => {
  assert.deepEqual([...encodeName('a\\.b.c.')], [3, 97, 46, 98, 1, 99, 0]);
  assert.deepEqual([...encodeName('.')], [0]);
  // "x" + pointer to offset 0 ("a.b.")
  const buf = Uint8Array.from([1, 97, 1, 98, 0, 1, 120, 0xc0, 0]);
  assert.deepEqual(decodeName(buf, 5), { name: 'x.a.b.', next: 9 });
  assert.throws(() => decodeName(Uint8Array.from([0xc0, 0]), 0), DnsFormatError);
  assert.throws(() => decodeName(Uint8Array.from([5, 97]), 0), DnsFormatError);
});

test('names the encoder cannot send are UsageError EINVALID saying why, not a RangeError or a masked octet', () => {
  const cases: [string, RegExp][] = [
    ['a..b.', /has an empty label/], ['.a.', /has an empty label/], [`${'x'.repeat(64)}.example.`, /a label is longer than 63 octets/],
    [`${'a'.repeat(63)}.`.repeat(4), /257 octets, over the 255 of a DNS name/], ['a\\256.', /escape \\256 is over 255/], ['a\\', /ends with a lone/],
  ];
  for (const [name, why] of cases) {
    assert.throws(() => encodeName(name), (e: unknown) => e instanceof UsageError && e.code === 'EINVALID' && why.test(e.message), name);
  }
  assert.deepEqual([...encodeName('a\\255\\000.')], [3, 97, 255, 0, 0]);
  assert.equal(encodeName(`${'a'.repeat(63)}.`.repeat(3) + `${'a'.repeat(61)}.`).length, 255);
});

test('UPDATE message: zone section, three RRset deletions, then the new RRs (RFC 2136 §2.5)', () => {
  const m = buildUpdate('example.', HOST, 0x1234);
  const back = decodeMessage(encodeMessage(m));
  assert.equal(back.flags >> 11, 5);
  assert.deepEqual(back.questions, [{ name: 'example.', type: RrType.SOA, class: RrClass.IN }]);
  assert.deepEqual(back.authorities.slice(0, 3).map((r) => [r.name, r.type, r.class, r.ttl, r.rdata.length]), [
    ['h.example.', 65300, RrClass.ANY, 0, 0], ['h.example.', RrType.AAAA, RrClass.ANY, 0, 0], ['_shim6.h.example.', RrType.TXT, RrClass.ANY, 0, 0],
  ]);
  assert.deepEqual(back.authorities.slice(3).map((r) => [r.type, r.class]), [[65300, 1], [28, 1], [28, 1], [16, 1]]);
  assert.match(decodeTxtRdata(back.authorities[6]!.rdata).join(''), /^v=shim6cap1 b64=/);
  assert.throws(() => buildUpdate('other.', HOST, 1), (e: unknown) => e instanceof UsageError && e.field === 'name');
});

/**
 * Sign an answer the way a server does, written out here from RFC 8945 §5.3 and
 * §4.3.3 independently of tsig.ts: HMAC(request MAC length ‖ request MAC ‖
 * answer without TSIG ‖ key name ‖ class ANY ‖ TTL 0 ‖ algorithm ‖ time ‖ fudge ‖
 * error ‖ other length).
 */
function serverAnswer(request: Uint8Array, requestMac: Uint8Array, key: TsigKey, rcode: number, time: number, tsigError = 0): Uint8Array {
  const req = decodeMessage(request);
  const body = encodeMessage({ id: req.id, flags: 0x8000 | (5 << 11) | rcode, questions: req.questions, answers: [], authorities: [], additionals: [] });
  const u16 = (n: number): Buffer => Buffer.from([n >> 8, n & 0xff]);
  let mac = new Uint8Array(0);
  if (tsigError === 0) {
    mac = createHmac('sha256', key.secret)
      .update(u16(requestMac.length)).update(requestMac).update(body)
      .update(encodeName(key.name)).update(Buffer.from([0, 255, 0, 0, 0, 0])).update(encodeName('hmac-sha256.'))
      .update(Buffer.from([0, 0, time >>> 24, (time >>> 16) & 0xff, (time >>> 8) & 0xff, time & 0xff])).update(u16(300))
      .update(u16(tsigError)).update(u16(0))
      .digest();
  }
  const rdata = encodeTsigRdata({ algorithm: 'hmac-sha256.', timeSigned: time, fudge: 300, mac, originalId: req.id, error: tsigError, otherData: new Uint8Array(0) });
  body[11] = 1;
  return Uint8Array.from([...body, ...encodeRecord({ name: key.name, type: RrType.TSIG, class: RrClass.ANY, ttl: 0, rdata })]);
}

test('TSIG: a correctly signed answer verifies; tampering, wrong key, old time and server errors do not', () => {
  const now = 1_800_000_000;
  const req = encodeMessage(buildUpdate('example.', HOST, 0x4242));
  const { bytes, mac } = signMessage(req, KEY, now);
  const tsig = decodeTsigRdata(decodeMessage(bytes).additionals.at(-1)!.rdata);
  assert.equal(tsig.algorithm, 'hmac-sha256.');
  assert.equal(tsig.mac.length, 32);
  assert.equal(tsig.originalId, 0x4242);
  assert.equal(tsig.timeSigned, now);

  const ok = serverAnswer(bytes, mac, KEY, 0, now);
  assert.equal(verifyResponse(ok, KEY, mac, now).status, 'ok');
  assert.equal(verifyResponse(ok, KEY, mac, now + 301).status, 'bad-time');
  assert.equal(verifyResponse(ok, KEY, mac.map((x) => x ^ 1), now).status, 'bad-mac', 'bound to the request MAC');
  const tampered = ok.slice();
  tampered[3] = tampered[3]! ^ 0x05;
  assert.equal(verifyResponse(tampered, KEY, mac, now).status, 'bad-mac');
  assert.equal(verifyResponse(ok, { ...KEY, secret: new Uint8Array(32).fill(8) }, mac, now).status, 'bad-mac');
  assert.equal(verifyResponse(ok, { ...KEY, name: 'other.' }, mac, now).status, 'wrong-key');
  const err = verifyResponse(serverAnswer(bytes, mac, KEY, 9, now, 16), KEY, mac, now);
  assert.equal(err.status, 'server-error');
  assert.equal(err.status === 'server-error' && err.error, 16);
  const unsigned = encodeMessage({ id: 0x4242, flags: 0x8000 | (5 << 11), questions: [], answers: [], authorities: [], additionals: [] });
  assert.equal(verifyResponse(unsigned, KEY, mac, now).status, 'unsigned');
});

test('TSIG key files: BIND, knot YAML, name:secret, alg:name:secret; errors name the file', () => {
  const s = Buffer.from(new Uint8Array(32).fill(1)).toString('base64');
  const want = { name: 'upd.', algorithm: 'hmac-sha256', secret: new Uint8Array(32).fill(1) };
  assert.deepEqual(parseTsigKeyFile(`/* c */ key "upd" {\n algorithm hmac-sha256; # x\n secret "${s}";\n};`, 'f'), want);
  // A secret with "//" in it is not a comment (tsig-keygen writes one about once in a hundred keys).
  const slashes = 'ab//cd+/ef//gh0123456789ABCDEFGHIJKLMNOPQQ==';
  assert.equal(Buffer.from(parseTsigKeyFile(`key "upd" { // comment\n algorithm hmac-sha256;\n secret "${slashes}"; // "quoted" in a comment\n};`, 'f').secret).toString('base64'), slashes);
  assert.deepEqual(parseTsigKeyFile(`key:\n  - id: upd\n    algorithm: hmac-sha256\n    secret: ${s}\n`, 'f'), want);
  assert.deepEqual(parseTsigKeyFile(`upd:${s}\n`, 'f'), want);
  assert.deepEqual(parseTsigKeyFile(`hmac-sha256:upd.:${s}\n`, 'f'), want);
  const two = `key "a" { algorithm hmac-sha256; secret "${s}"; };\nkey "b" { algorithm hmac-sha256; secret "${s}"; };`;
  assert.equal(parseTsigKeyFile(two, 'f', 'b').name, 'b.');
  for (const [text, name] of [[two, undefined], [`key "a" { algorithm hmac-md5; secret "${s}"; };`, undefined], ['nothing here', undefined], [`a:not*base64`, undefined], [two, 'c']] as const) {
    assert.throws(() => parseTsigKeyFile(text, 'f', name), (e: unknown) => e instanceof UsageError && e.code === 'ETSIG_KEY', text);
  }
});

test('TSIG key files: a key name that is no DNS name is ETSIG_KEY naming the file, not a key that cannot sign', () => {
  const s = Buffer.from(new Uint8Array(32).fill(7)).toString('base64');
  // Each passed the name's character check, then signing threw a RangeError (EINTERNAL; the daemon failed every update).
  const cases: [string, RegExp][] = [
    ['a..b', /has an empty label/], ['.a', /has an empty label/], ['x'.repeat(70), /a label is longer than 63 octets/],
    [`${'k'.repeat(63)}.`.repeat(4), /octets, over the 255 of a DNS name/],
  ];
  for (const [name, why] of cases) {
    for (const text of [`${name}:${s}\n`, `key "${name}" { algorithm hmac-sha256; secret "${s}"; };\n`]) {
      assert.throws(() => parseTsigKeyFile(text, 'bad.key'), (e: unknown) => e instanceof UsageError && e.code === 'ETSIG_KEY'
        && e.message.startsWith(`bad.key: bad key name ${JSON.stringify(name)}: `) && why.test(e.message), text.slice(0, 40));
    }
  }
  // The longest names that are names still sign.
  for (const name of ['k'.repeat(63), `${'k'.repeat(63)}.`.repeat(3) + 'k'.repeat(61)]) {
    const key = parseTsigKeyFile(`${name}:${s}\n`, 'ok.key');
    assert.equal(signMessage(new Uint8Array(12), key, 1_700_000_000).bytes.length > 12, true);
  }
});

test('server syntax: ADDR, ADDR:PORT, v6, [v6]:PORT; bad ones name the flag', () => {
  assert.deepEqual(parseServer('127.0.0.1'), { host: '127.0.0.1', port: 53 });
  assert.deepEqual(parseServer('127.0.0.1:5300'), { host: '127.0.0.1', port: 5300 });
  assert.deepEqual(parseServer('2001:db8::53'), { host: '2001:db8::53', port: 53 });
  assert.deepEqual(parseServer('[::1]:5300'), { host: '::1', port: 5300 });
  for (const bad of ['', '1.2.3.4:0', '1.2.3.4:99999', 'a b', '[::1]:x']) {
    assert.throws(() => parseServer(bad, '--server'), (e: unknown) => e instanceof UsageError && e.field === '--server', bad);
  }
});


test('fuzz: DNS answers and TSIG RDATA from a server only ever throw DnsFormatError', (t) => {
  const r = rng(fuzzSeed(t, 5300));
  const int = (n: number): number => Math.floor(r() * n);
  const { bytes, mac } = signMessage(encodeMessage(buildUpdate('example.', HOST, 7)), KEY, 1_800_000_000);
  const seeds = [bytes, encodeTxtRdata(['v=shim6cap1 b64=AQ==', 'x'])];
  for (let i = 0; i < fuzzRuns(20_000); i++) {
    const b = seeds[int(seeds.length)]!.slice(0, int(seeds[0]!.length + 8));
    for (let k = int(6); k >= 0; k--) if (b.length > 0) b[int(b.length)] = int(256);
    for (const f of [() => decodeMessage(b), () => decodeTsigRdata(b), () => decodeTxtRdata(b), () => verifyResponse(b, KEY, mac, 0)]) {
      try { f(); } catch (e) { assert.ok(e instanceof DnsFormatError, `${(e as Error).name}: ${(e as Error).message}`); }
    }
  }
});

test('fuzz: zone check and inventories never throw on arbitrary text', (t) => {
  const pieces = ['$ORIGIN ', '$TTL ', '$INCLUDE ', '@', 'h', ' IN ', ' TYPE65300 ', '\\# ', '20 ', '0100', '(', ')', '"', ';', '\n', ' AAAA ', '2001:db8::1', '_shim6 TXT ', 'v=shim6cap1 b64=', '\\', '.', '1h'];
  fc.assert(fc.property(fc.array(fc.constantFrom(...pieces), { maxLength: 60 }), (parts) => {
    const res = checkZoneText(parts.join(''), 'fuzz', { readFile: () => { throw new Error('no includes here'); } });
    assert.ok(Array.isArray(res.problems));
  }), fuzzParams(t, { seed: 5300, numRuns: 3000 }));
  fc.assert(fc.property(fc.string({ maxLength: 200 }), (s) => {
    try { parseInventory(s, 'fuzz'); } catch (e) { assert.ok(e instanceof UsageError, String(e)); }
  }), fuzzParams(t, { seed: 5301, numRuns: 2000 }));
});

test('zone show without --server asks the first nameserver of resolv.conf', (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'zone-resolv-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const conf = (text: string): string => { const p = path.join(dir, 'resolv.conf'); writeFileSync(p, text); return p; };
  assert.equal(systemServer(conf('# x\nsearch example\nnameserver 192.0.2.53\nnameserver 192.0.2.54\n')), '192.0.2.53');
  assert.equal(systemServer(conf('nameserver fe80::1%eth0\n')), '[fe80::1]:53');
  assert.equal(systemServer(path.join(dir, 'none')), '127.0.0.1');
});

test('TSIG key files of several keys: only the key picked must be hmac-sha256', () => {
  const s = Buffer.from(new Uint8Array(32).fill(1)).toString('base64');
  const s512 = Buffer.from(new Uint8Array(64).fill(2)).toString('base64');
  const bind = `key "old" { algorithm hmac-sha512; secret "${s512}"; };\nkey "upd" { algorithm hmac-sha256; secret "${s}"; };\n`;
  const knot = `key:\n  - id: old\n    algorithm: hmac-sha512\n    secret: ${s512}\n  - id: upd\n    algorithm: hmac-sha256\n    secret: ${s}\n`;
  for (const text of [bind, knot]) {
    assert.deepEqual(parseTsigKeyFile(text, 'f', 'upd'), { name: 'upd.', algorithm: 'hmac-sha256', secret: new Uint8Array(32).fill(1) });
    assert.deepEqual(parseTsigKeyFile(text, 'f', 'UPD.').name, 'upd.');
    // The unusable one is still refused when it is the one picked, by its algorithm.
    assert.throws(() => parseTsigKeyFile(text, 'f', 'old'), (e: unknown) => e instanceof UsageError && e.code === 'ETSIG_KEY' && /key "old" uses algorithm "hmac-sha512"; only hmac-sha256/.test(e.message));
    assert.throws(() => parseTsigKeyFile(text, 'f'), (e: unknown) => e instanceof UsageError && /holds 2 keys \(old\., upd\.\); pick one with --key-name/.test(e.message));
  }
});

test('UPDATE message: a host whose _shim6 TXT owner would pass 255 octets is a --name error, not "name too long" (EINTERNAL)', () => {
  // 238 + 1 + "example." = 247 characters: the host fits, `_shim6.` makes 256 octets.
  const name = `${'h'.repeat(60)}.${'h'.repeat(60)}.${'h'.repeat(60)}.${'h'.repeat(56)}.example.`;
  const host = buildHostRecord({ name, ulid: '2001:db8::1', locators: ['2001:db8::1'] });
  assert.throws(() => buildUpdate('example.', host, 1), (e: unknown) => e instanceof UsageError && e.code === 'EINVALID' && e.field === '--name' && /would be 256 octets/.test(e.message));
});

test('a UDP answer is taken only from the server asked: a datagram with the right ID from another port is dropped (RFC 5452 §9.1)', async (t) => {
  const server = dgram.createSocket('udp4');
  const forger = dgram.createSocket('udp4');
  t.after(() => { server.close(); forger.close(); });
  await new Promise<void>((r) => server.bind(0, '127.0.0.1', () => r()));
  await new Promise<void>((r) => forger.bind(0, '127.0.0.1', () => r()));
  server.on('message', (q, from) => {
    // The forger's answer first (same ID, another source port), then the server's.
    const forged = Buffer.from(q); forged[2] = 0x80; forged[3] = 0x03; // NXDOMAIN
    const real = Buffer.from(q); real[2] = 0x80; real[3] = 0x00;
    forger.send(forged, from.port, from.address, () => server.send(real, from.port, from.address));
  });
  const query = Uint8Array.from([0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 1]);
  const answer = await exchange({ host: '127.0.0.1', port: (server.address()).port }, query, { timeoutMs: 30_000, tries: 1 });
  assert.equal(answer[3]! & 0x0f, 0, 'the server\'s NOERROR, not the forger\'s NXDOMAIN');
});

test('a server given by name (localhost:PORT) is looked up once and heard, over UDP and TCP; a name with no address is ERESOLVE, nothing sent', async (t) => {
  // The address the exchange will pick: the system's first for the name.
  const { address, family } = await dnsLookup('localhost');
  const udp = dgram.createSocket(family === 6 ? 'udp6' : 'udp4');
  let asked = 0;
  udp.on('message', (m, r) => {
    asked++;
    const a = Buffer.from(m);
    a[2] = a[2]! | 0x84; // QR + AA, NOERROR
    udp.send(a, r.port, r.address);
  });
  await new Promise<void>((res) => udp.bind(0, address, res));
  const { port } = udp.address();
  const tcp = net.createServer((c) => c.once('data', (d) => { const a = Buffer.from(d); a[4] = a[4]! | 0x84; c.end(a); }));
  await new Promise<void>((res) => tcp.listen(port, address, res));
  t.after(() => { udp.close(); tcp.close(); });
  const server = parseServer(`localhost:${port}`, '--server');
  assert.equal(server.host, 'localhost');
  const query = Uint8Array.from([0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 1]);
  // The old exchange compared each datagram's source with the name "localhost": every answer was dropped (ETIMEOUT).
  const answer = await exchange(server, query, { timeoutMs: 30_000, tries: 1 });
  assert.equal(asked, 1);
  assert.deepEqual([answer[0], answer[1], answer[2]! & 0x84], [0x12, 0x34, 0x84]);
  const overTcp = await exchange(server, query, { tcp: true, timeoutMs: 30_000 });
  assert.deepEqual([overTcp[0], overTcp[1], overTcp[2]! & 0x84], [0x12, 0x34, 0x84]);
  await assert.rejects(exchange(parseServer('no-such-host.invalid:53'), query, { timeoutMs: 2000, tries: 1 }),
    (e: unknown) => e instanceof TransportError && e.code === 'ERESOLVE' && /^cannot resolve the server name "no-such-host\.invalid": .*; nothing was sent$/.test(e.message));
});
