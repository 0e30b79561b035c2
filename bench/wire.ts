// `npm run bench -- wire [seconds-per-case]`: encode and decode rates (messages per
// second, one core) of the Shim6 codecs for I1, I2 with locators, Probe and the
// capability record, with peers measured in the same run: dns-packet decoding a
// DNS query of similar size, and JSON.parse of the message's JSON form. Prints
// figures and ratios; asserts nothing.
import dnsPacket from 'dns-packet';
import { loadavg } from 'node:os';
import { decodeCapabilityRecord, encodeCapabilityRecord, type CapabilityRecord } from '../shim/wire/capability-record.ts';
import { demoMessages } from '../shim/wire/demo.ts';
import { decodeMessage, encodeMessage, type Shim6Message } from '../shim/wire/index.ts';
import { toJson } from '../shim/wire/json.ts';
import { rate as measure, fmtRate } from './_rate.ts';

const SECONDS = Number(process.argv[2] ?? 1);

const rate = (fn: () => unknown): number => measure(fn, SECONDS);
const fmt = fmtRate;

const demo = demoMessages();
const pick = (t: Shim6Message['type']): Shim6Message => demo.find((m) => m.type === t)!;
const I1 = pick('I1');
const I2 = pick('I2');
const probe = pick('Probe');
const record: CapabilityRecord = {
  hbaSet: true, cgaUlid: false, ulid: '2001:db8:a::1',
  locators: [
    { address: '2001:db8:a::1', flags: 0, priority: 1, weight: 10 },
    { address: '2001:db8:a2::1', flags: 0, priority: 2, weight: 10 },
  ],
  mandatory: [], hbaDigest: { alg: 1, digest: new Uint8Array(32).fill(7) }, unknownParams: [],
};

const rows: { name: string; size: number; enc: number; dec: number }[] = [];
for (const [name, m] of [['I1', I1], ['I2 (validator, 2 locators, prefs, CGA PDS, keepalive)', I2], ['Probe (1 sent, 1 received report)', probe]] as const) {
  const bytes = encodeMessage(m);
  rows.push({ name, size: bytes.length, enc: rate(() => encodeMessage(m)), dec: rate(() => decodeMessage(bytes)) });
}
const rdata = encodeCapabilityRecord(record);
rows.push({ name: 'capability record (2 locators, hba-digest)', size: rdata.length, enc: rate(() => encodeCapabilityRecord(record)), dec: rate(() => decodeCapabilityRecord(rdata)) });

// Peers, same run.
const query = dnsPacket.encode({ type: 'query', id: 1, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'AAAA', name: 'host.example' }] });
const dnsDec = rate(() => dnsPacket.decode(query));
const i1Json = JSON.stringify(toJson(I1));
const jsonDec = rate(() => JSON.parse(i1Json));

console.log(`wire codec, one core, ${SECONDS}s per case (best of 3); node ${process.version}; load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
console.log(`${'message'.padEnd(56)} ${'octets'.padStart(6)} ${'encode/s'.padStart(12)} ${'decode/s'.padStart(12)}`);
for (const r of rows) console.log(`${r.name.padEnd(56)} ${String(r.size).padStart(6)} ${fmt(r.enc)} ${fmt(r.dec)}`);
console.log('peers (same run):');
console.log(`${`dns-packet decode, AAAA query (${query.length} octets)`.padEnd(63)} ${''.padStart(12)} ${fmt(dnsDec)}`);
console.log(`${`JSON.parse of the I1's JSON form (${i1Json.length} chars)`.padEnd(63)} ${''.padStart(12)} ${fmt(jsonDec)}`);
const i1 = rows[0]!;
console.log(`I1 decode: ${(i1.dec / dnsDec).toFixed(1)}× dns-packet decode, ${(i1.dec / jsonDec).toFixed(1)}× JSON.parse; target 1,000,000/s: ${i1.dec >= 1e6 ? 'met' : 'NOT met'}`);
