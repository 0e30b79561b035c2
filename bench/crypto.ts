// `npm run bench -- crypto [seconds-per-case]`: HBA/CGA verification and
// generation rates and capability record codec rates (one core), next to their
// peers in the same run: one raw SHA-1 over the same parameter block (the floor
// under any HBA check) and node's RSA verify. "Contexts/s" is verifyHbaSet on a
// 3-locator list — the HBA work the engine does per I2. Prints figures and
// ratios; asserts nothing.
import crypto from 'node:crypto';
import { loadavg } from 'node:os';
import { cgaSignatureInput, generateCga, signCgaLocators, verifyCga, verifyCgaSignature } from '../shim/wire/cga.ts';
import { generateHbaSet, verifyHbaAddress, verifyHbaSet } from '../shim/wire/hba.ts';
import {
  decodeCapabilityRecord, decodeCapabilityTxt, encodeCapabilityRecord, encodeCapabilityTxt, formatCapabilityRecord,
  parseCapabilityRecord, type CapabilityRecord,
} from '../shim/wire/capability-record.ts';
import { rate as measure, fmtRate } from './_rate.ts';

const SECONDS = Number(process.argv[2] ?? 1);

const rate = (fn: () => unknown, warm = 2000): number => measure(fn, SECONDS, { warm, batch: 50 });
const fmt = fmtRate;
let seedCounter = 0;
const rb = (n: number): Uint8Array => crypto.createHash('sha512').update(`bench/${seedCounter++}`).digest().subarray(0, n);

const rsa1024 = crypto.generateKeyPairSync('rsa', { modulusLength: 1024 });
const rsa2048 = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const spki = (k: crypto.KeyObject): Uint8Array => new Uint8Array(k.export({ format: 'der', type: 'spki' }));
const prefixes = ['2001:db8:1::/64', '2001:db8:2::/64', '2001:db8:3::/64'];
const hba0 = generateHbaSet({ prefixes, sec: 0, randomBytes: rb });
const hba1 = generateHbaSet({ prefixes, sec: 1, randomBytes: rb });
const hbaKey = generateHbaSet({ prefixes, sec: 1, publicKey: spki(rsa2048.publicKey), randomBytes: rb });
const addrs1 = hba1.members.map((m) => m.address);
const p1 = hba1.members[0]!.params;
const locators = ['2001:db8:4::1', '2001:db8:5::1'];
const cga1024 = generateCga({ subnetPrefix: '2001:db8:1::', publicKey: spki(rsa1024.publicKey), sec: 0, randomBytes: rb });
const cga2048 = generateCga({ subnetPrefix: '2001:db8:1::', publicKey: spki(rsa2048.publicKey), sec: 0, randomBytes: rb });
const sig1024 = signCgaLocators(rsa1024.privateKey, 1, locators);
const sig2048 = signCgaLocators(rsa2048.privateKey, 1, locators);

console.log(`crypto bench: ${SECONDS}s per case, node ${process.version}, load ${loadavg()[0]!.toFixed(2)}`);
console.log(`HBA-only params ${p1.length} octets; HBA/CGA (RSA-2048) params ${hbaKey.members[0]!.params.length} octets\n`);

const sha1Rate = rate(() => crypto.hash('sha1', p1, 'buffer'));
const rows: [string, number, number][] = [];
const row = (name: string, r: number, per = 1): void => { rows.push([name, r, per]); };
row('peer: one raw SHA-1 of the params', sha1Rate);
row('verifyHbaAddress, Sec 0', rate(() => verifyHbaAddress(hba0.members[1]!.address, hba0.members[0]!.params)));
row('verifyHbaAddress, Sec 1', rate(() => verifyHbaAddress(addrs1[1]!, p1)));
row('verifyHbaAddress, Sec 1, RSA-2048 key in params', rate(() => verifyHbaAddress(hbaKey.members[1]!.address, hbaKey.members[0]!.params)));
const ctxRate = rate(() => verifyHbaSet(addrs1, p1));
row('verifyHbaSet, 3 locators, Sec 1 (= contexts/s)', ctxRate);
row('verifyCga (RFC 3972 §5), Sec 0, RSA-1024', rate(() => verifyCga(cga1024.address, cga1024.params)));
const v1024 = rate(() => verifyCgaSignature({ params: cga1024.params, generation: 1, locators, signature: sig1024, ulid: cga1024.address }), 200);
row('verifyCgaSignature + CGA, RSA-1024', v1024);
row('verifyCgaSignature + CGA, RSA-2048', rate(() => verifyCgaSignature({ params: cga2048.params, generation: 1, locators, signature: sig2048, ulid: cga2048.address }), 200));
const pub2048 = rsa2048.publicKey;
row('peer: node crypto.verify RSA-2048/SHA-1 alone', rate(() => crypto.verify('sha1', cgaSignatureInput(1, locators), { key: pub2048, padding: crypto.constants.RSA_PKCS1_PADDING }, sig2048), 200));
row('signCgaLocators, RSA-2048', rate(() => signCgaLocators(rsa2048.privateKey, 1, locators), 20));
const spki1024 = spki(rsa1024.publicKey);
row('generateCga, Sec 0', rate(() => generateCga({ subnetPrefix: '2001:db8:1::', publicKey: spki1024, sec: 0, randomBytes: rb })));
row('generateCga, Sec 1', rate(() => generateCga({ subnetPrefix: '2001:db8:1::', publicKey: spki1024, sec: 1, randomBytes: rb }), 3));
row('generateHbaSet, 3 prefixes, Sec 1', rate(() => generateHbaSet({ prefixes, sec: 1, randomBytes: rb }), 3));

// A 4-locator set as the daemon signs it once per change (cga: { key }) and a peer checks it (RFC 5533 §5.15.5),
// next to node's raw RSA-2048 sign and verify of the same octets.
const four = ['2001:db8:3::a', '2001:db8:4::a', '2001:db8:5::a', '2001:db8:6::a'];
const keyUlid = hbaKey.members[0]!;
const sig4 = signCgaLocators(rsa2048.privateKey, 7, four);
const signed4 = cgaSignatureInput(7, four);
const sign4 = rate(() => signCgaLocators(rsa2048.privateKey, 7, four), 20);
const verify4 = rate(() => verifyCgaSignature({ params: keyUlid.params, generation: 7, locators: four, signature: sig4, ulid: keyUlid.address }), 200);
const rawSign = rate(() => crypto.sign('sha1', signed4, { key: rsa2048.privateKey, padding: crypto.constants.RSA_PKCS1_PADDING }), 20);
const rawVerify = rate(() => crypto.verify('sha1', signed4, { key: pub2048, padding: crypto.constants.RSA_PKCS1_PADDING }, sig4), 200);
const both = (x: number, y: number): number => 1 / (1 / x + 1 / y);
row('CGA sign, 4-locator set, RSA-2048', sign4);
row('CGA verify, 4-locator set (ULID CGA + signature)', verify4);
row('CGA sign+verify, 4-locator set', both(sign4, verify4));
row('peer: node crypto.sign RSA-2048/SHA-1 alone', rawSign);
row('peer: node crypto.sign+verify RSA-2048/SHA-1', both(rawSign, rawVerify));

for (const [name, r] of rows) console.log(`${name.padEnd(52)} ${fmt(r)} /s   ${(r / sha1Rate).toFixed(2)} × SHA-1   ${(1e6 / r).toFixed(1).padStart(9)} µs`);

const small: CapabilityRecord = decodeCapabilityRecord(encodeCapabilityRecord({
  hbaSet: true, cgaUlid: false, ulid: '2001:db8:1::1',
  locators: [{ address: '2001:db8:1::1', flags: 0, priority: 10, weight: 1 }, { address: '2001:db8:2::1', flags: 2, priority: 20, weight: 1 }],
  mandatory: [2], hbaDigest: { alg: 1, digest: new Uint8Array(32).fill(0x11) }, port: 5533, unknownParams: [],
}));
const big: CapabilityRecord = { ...small, locators: Array.from({ length: 32 }, (_, i) => ({ address: `2001:db8:${(i + 1).toString(16)}::1`, flags: 0, priority: i, weight: 1 })) };
console.log('');
for (const [label, r] of [['2 locators', small], ['32 locators', big]] as const) {
  const bytes = encodeCapabilityRecord(r);
  const text = formatCapabilityRecord(r);
  const txt = encodeCapabilityTxt(r);
  const dec = rate(() => decodeCapabilityRecord(bytes), 5000);
  console.log(`capability record, ${label} (${bytes.length} octets)`);
  console.log(`  decodeCapabilityRecord ${fmt(dec)} /s`);
  console.log(`  encodeCapabilityRecord ${fmt(rate(() => encodeCapabilityRecord(r), 5000))} /s`);
  console.log(`  parseCapabilityRecord  ${fmt(rate(() => parseCapabilityRecord(text), 2000))} /s`);
  console.log(`  decodeCapabilityTxt    ${fmt(rate(() => decodeCapabilityTxt(txt), 2000))} /s`);
}
console.log(`\nCGA sign+verify of a 4-locator set: ${fmt(both(sign4, verify4)).trim()} /s = ${(both(sign4, verify4) / both(rawSign, rawVerify)).toFixed(2)} × node's raw RSA-2048 sign+verify (sign ${(sign4 / rawSign).toFixed(2)} ×, verify ${(verify4 / rawVerify).toFixed(2)} ×)`);
console.log(`\nHBA contexts/s (verifyHbaSet, 3 locators): ${fmt(ctxRate).trim()} — target 10,000: ${(ctxRate / 10_000).toFixed(1)} × the target`);
