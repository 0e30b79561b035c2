// Seeded fuzz (deterministic): > 100,000 random and mutated inputs through every
// decoder and parser of untrusted input in the crypto/record area. Each may only
// ever throw WireError; verifiers must never throw at all; whatever decodes must
// re-encode to something that decodes the same.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  capabilityTxtRdata, checkCapabilityRecordAt, decodeCapabilityRecord, decodeCapabilityRecordAt, decodeCapabilityTxt, encodeCapabilityRecord, encodeCapabilityTxt,
  formatCapabilityRecord, ignoreReason, fromGenericRdata, parseCapabilityRecord, recordFromOctets, toGenericRdata, type RecordOctets,
} from '../../shim/wire/capability-record.ts';
import { checkCga, decodeCgaParams, encodeCgaParams, generateCga } from '../../shim/wire/cga.ts';
import { checkHbaSet, generateHbaSet } from '../../shim/wire/hba.ts';
import { WireError } from '../../shim/wire/errors.ts';
import { hex } from '../helpers/octets.ts';
import { SimRng, fuzzRuns, fuzzSeed, randomBytes } from '../helpers/rng.ts';
import { arbRecord, arbRecordWithUnknownMandatory } from './arbitrary.ts';
import { GOLDEN_HEX } from './golden.ts';

/** Seeded floats in [0, 1) (test/helpers/rng.ts). */
function prng(seed: number): () => number {
  const r = new SimRng(seed);
  return () => r.float();
}


const INTERESTING = [0, 1, 2, 0x20, 0x21, 0x30, 0x7f, 0x80, 0x81, 0x82, 0xff];

function mutateBytes(rnd: () => number, seeds: readonly Uint8Array[]): Uint8Array {
  const int = (n: number): number => Math.floor(rnd() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  if (rnd() < 0.1) return Uint8Array.from({ length: int(160) }, () => int(256));
  let b = Uint8Array.from(pick(seeds));
  for (let k = 1 + int(4); k > 0; k--) {
    const at = int(b.length + 1);
    switch (int(7)) {
      case 0: if (b.length) b[at % b.length] = (b[at % b.length] ?? 0) ^ (1 << int(8)); break;
      case 1: if (b.length) b[at % b.length] = pick(INTERESTING); break;
      case 2: b = b.slice(0, at); break;
      case 3: b = Uint8Array.of(...b, ...Array.from({ length: 1 + int(24) }, () => int(256))); break;
      case 4: b = Uint8Array.of(...b.subarray(0, at), ...b.subarray(Math.min(b.length, at + 1 + int(20)))); break;
      case 5: if (b.length > 1) { const v = int(3) === 0 ? 0xffff : int(b.length + 8); b[at % (b.length - 1)] = v >> 8; b[(at % (b.length - 1)) + 1] = v & 0xff; } break;
      default: { const o = pick(seeds); const from = int(o.length + 1); b = Uint8Array.of(...b.subarray(0, at), ...o.subarray(from, from + int(40))); }
    }
  }
  return b;
}

const TEXT_ALPHABET = ' \t=/:,+.#\\v1023456789abcdefxABCDEF-_loculidprweightflagsmandatoryhbacgaportkeysha';
function mutateText(rnd: () => number, seeds: readonly string[]): string {
  const int = (n: number): number => Math.floor(rnd() * n);
  let s = seeds[int(seeds.length)]!;
  for (let k = 1 + int(4); k > 0; k--) {
    const at = int(s.length + 1);
    switch (int(6)) {
      case 0: s = s.slice(0, at) + TEXT_ALPHABET[int(TEXT_ALPHABET.length)]! + s.slice(at + 1); break;
      case 1: s = s.slice(0, at) + String.fromCharCode(int(0x3000)) + s.slice(at); break;
      case 2: s = s.slice(0, at); break;
      case 3: s = s.slice(0, at) + s.slice(at + 1 + int(12)); break;
      case 4: { const t = s.split(' '); t.splice(int(t.length), 0, t[int(t.length)] ?? ''); s = t.join(' '); break; }
      default: s = s.slice(0, at) + seeds[int(seeds.length)]!.slice(int(40), int(80)) + s.slice(at);
    }
  }
  return s;
}

interface Tally { inputs: number; ok: number; failures: string[] }

function run(t: Tally, label: string, input: unknown, f: () => void, mayThrow = true): void {
  t.inputs++;
  try { f(); t.ok++; } catch (e) {
    if (!mayThrow || !(e instanceof WireError)) {
      if (t.failures.length < 5) t.failures.push(`${label}: ${String(e)} for ${JSON.stringify(input instanceof Uint8Array ? Buffer.from(input).toString('hex') : input)}`);
    }
  }
}

const records = [...fc.sample(arbRecord, { seed: 42, numRuns: 40 }), ...fc.sample(arbRecordWithUnknownMandatory, { seed: 43, numRuns: 10 })];
const recordSeeds = [hex(GOLDEN_HEX), ...records.map(encodeCapabilityRecord)];

test('fuzz: capability record RDATA, TXT and generic forms (seeded)', (ctx) => {
  const rnd = prng(fuzzSeed(ctx, 0x5133));
  const t: Tally = { inputs: 0, ok: 0, failures: [] };
  for (let i = 0; i < fuzzRuns(50_000); i++) {
    const b = mutateBytes(rnd, recordSeeds);
    run(t, 'decodeCapabilityRecord', b, () => {
      const r = decodeCapabilityRecord(b);
      // Round trips of what decoded, on a sample (they cost ten decodes each).
      if (i % 4 === 0) assert.deepEqual(decodeCapabilityRecord(encodeCapabilityRecord(r)), r);
      if (i % 16 === 0) assert.deepEqual(parseCapabilityRecord(formatCapabilityRecord(r)), r);
    });
    if (i % 5 === 0) run(t, 'decodeCapabilityTxt', b, () => { decodeCapabilityTxt(encodeCapabilityTxt(b)); });
  }
  const txtSeeds = recordSeeds.map((b) => encodeCapabilityTxt(b));
  const genericSeeds = recordSeeds.map(toGenericRdata);
  for (let i = 0; i < fuzzRuns(10_000); i++) {
    const s = mutateText(rnd, txtSeeds);
    run(t, 'capabilityTxtRdata', s, () => { capabilityTxtRdata(s); });
    const g = mutateText(rnd, genericSeeds);
    run(t, 'fromGenericRdata', g, () => { fromGenericRdata(g); });
  }
  ctx.diagnostic(`${t.inputs} inputs, ${t.ok} accepted`);
  assert.deepEqual(t.failures, []);
  assert.ok(t.inputs >= 80_000, `${t.inputs}`);
  // The mutations must reach deep: a fair share decodes.
  assert.ok(t.ok > t.inputs / 20, `only ${t.ok} of ${t.inputs} decoded`);
});

/** What a decode gave: the record, or the error's code, message, offset and ignore reason. */
function decodeOutcome(f: () => unknown): unknown {
  try {
    return { record: f() };
  } catch (e) {
    if (!(e instanceof WireError)) throw e;
    return { code: e.code, message: e.message, offset: e.offset, reason: ignoreReason(e) };
  }
}

test('fuzz: RDATA decoded in place (decodeCapabilityRecordAt), or checked in place into octets (checkCapabilityRecordAt), as decodeCapabilityRecord decodes it alone (seeded)', (ctx) => {
  const rnd = prng(fuzzSeed(ctx, 0x1a7));
  const int = (n: number): number => Math.floor(rnd() * n);
  let decoded = 0;
  const runs = fuzzRuns(30_000);
  for (let i = 0; i < runs; i++) {
    const rdata = mutateBytes(rnd, recordSeeds);
    // Octets around the RDATA, as in a DNS message: noise, or the start of another record (a
    // parameter or locator that a read past the end would take for its own).
    const before = Array.from({ length: int(24) }, () => int(256));
    const after = int(2) === 0 ? Array.from({ length: int(48) }, () => int(256)) : [...recordSeeds[int(recordSeeds.length)]!.subarray(int(40))];
    const whole = Uint8Array.of(...before, ...rdata, ...after);
    // The dgram backend hands over Buffers, the native one Uint8Arrays: the copies are of the container's kind.
    const container = i % 3 === 0 ? Buffer.from(whole) : whole;
    const alone = Uint8Array.prototype.slice.call(container, before.length, before.length + rdata.length);
    const strict = i % 7 === 0;
    const inPlace = decodeOutcome(() => decodeCapabilityRecordAt(container, before.length, rdata.length, strict));
    assert.deepEqual(inPlace, decodeOutcome(() => decodeCapabilityRecord(alone, { strict })), Buffer.from(whole).toString('hex'));
    // The resolver's check (never strict) accepts and rejects as the decoder, with the same error,
    // and its octets decode to the same record (its values Uint8Arrays, whatever the container's kind).
    let octets: RecordOctets | undefined;
    const checked = decodeOutcome(() => recordFromOctets(octets = checkCapabilityRecordAt(container, before.length, rdata.length)));
    const plain = strict ? undefined : decodeOutcome(() => decodeCapabilityRecord(Uint8Array.from(alone)));
    if (!strict) assert.deepEqual(checked, plain, Buffer.from(whole).toString('hex'));
    if ('record' in (inPlace as object)) {
      decoded++;
      // Nothing of the record is a view of the message: the receive slot is reused.
      container.fill(0xee);
      assert.deepEqual(inPlace, decodeOutcome(() => decodeCapabilityRecord(alone, { strict })));
      if (!strict) assert.deepEqual(decodeOutcome(() => recordFromOctets(octets!)), plain);
    }
  }
  ctx.diagnostic(`${runs} inputs, ${decoded} decoded`);
  assert.ok(decoded > runs / 20, `only ${decoded} of ${runs} decoded`);
});

test('the largest hostile RDATA: each shape decodes to its outcome, in place as alone', () => {
  const header = (n: number): number[] => [1, 0, n, 0, ...new Array<number>(16).fill(0x20)];
  const locators = (n: number): number[] => Array.from({ length: n }, (_, i) => [0, 0, 0, 0, ...new Array<number>(15).fill(0x30), i]).flat();
  // Every parameter key once (empty values), all of them mandatory but the last, which is missing from the list's end.
  const params = (m: number): number[] => {
    const keys = Array.from({ length: m }, (_, i) => i + 3);
    const mand = [...keys, m + 3].flatMap((k) => [k >> 8, k & 0xff]);
    return [0, 0, mand.length >> 8, mand.length & 0xff, ...mand, ...keys.flatMap((k) => [k >> 8, k & 0xff, 0, 0])];
  };
  const shapes = {
    'many keys, the last mandatory one missing': Uint8Array.from([...header(1), ...locators(1), ...params(10_900)]),
    '32 locators, the last a duplicate': Uint8Array.from([...header(32), ...locators(31), ...locators(31).slice(-20)]),
    'unknown parameters up to 65535 octets': Uint8Array.from([...header(1), ...locators(1), ...Array.from({ length: 16_373 }, (_, i) => [(i + 3) >> 8, (i + 3) & 0xff, 0, 0]).flat()]),
  };
  const expected = { 'many keys, the last mandatory one missing': 'ERECORD', '32 locators, the last a duplicate': 'ERECORD', 'unknown parameters up to 65535 octets': 'record' };
  for (const [label, rdata] of Object.entries(shapes)) {
    assert.ok(rdata.length <= 0xffff, label);
    const inMessage = Uint8Array.of(...new Array<number>(40).fill(0), ...rdata);
    const alone = decodeOutcome(() => decodeCapabilityRecord(rdata));
    assert.deepEqual(decodeOutcome(() => decodeCapabilityRecordAt(inMessage, 40, rdata.length)), alone, label);
    assert.deepEqual(decodeOutcome(() => recordFromOctets(checkCapabilityRecordAt(inMessage, 40, rdata.length))), alone, label);
    assert.deepEqual('record' in (alone as object) ? 'record' : (alone as { code: string }).code, expected[label as keyof typeof expected], label);
    // Bounds past the buffer are the caller's bug: a RangeError, never a read of what lies beyond.
    assert.throws(() => decodeCapabilityRecordAt(inMessage, 41, rdata.length), RangeError, label);
    assert.throws(() => checkCapabilityRecordAt(inMessage, 41, rdata.length), RangeError, label);
  }
  // The decoder's work is linear in the RDATA's length (a merge of the ascending key lists, each
  // locator compared with at most 31 earlier ones); tests assert no time (a loaded CI machine).
});

test('fuzz: capability record presentation form (seeded)', (ctx) => {
  const rnd = prng(fuzzSeed(ctx, 0x140));
  const t: Tally = { inputs: 0, ok: 0, failures: [] };
  const seeds = records.map(formatCapabilityRecord);
  for (let i = 0; i < fuzzRuns(15_000); i++) {
    const s = mutateText(rnd, seeds);
    run(t, 'parseCapabilityRecord', s, () => {
      const r = parseCapabilityRecord(s);
      assert.deepEqual(parseCapabilityRecord(formatCapabilityRecord(r)), r);
    });
  }
  ctx.diagnostic(`${t.inputs} inputs, ${t.ok} accepted`);
  assert.deepEqual(t.failures, []);
  assert.ok(t.ok > 500, `only ${t.ok} parsed`);
});

test('fuzz: CGA Parameters decode, and CGA/HBA verification never throws (seeded)', (ctx) => {
  const rnd = prng(fuzzSeed(ctx, 0x3972));
  const rb = randomBytes('fuzz');
  const hba = generateHbaSet({ prefixes: ['2001:db8:1::/64', '2001:db8:2::/64', '2001:db8:3::/64'], sec: 1, randomBytes: rb });
  const rfcKey = hex('305c300d06092a864886f70d0101010500034b003048024100c2c2f137305454f10bd9cea36844b530e9211a4b262b16467cb7dfba1f595c'
    + '0194f275be5a4d386f2c3c2382508773c7867f9b3b9e63a09c7bc48f7a54ebefaf0203010001');
  const cga = generateCga({ subnetPrefix: 'fe80::', publicKey: rfcKey, sec: 0, randomBytes: rb, extensions: [{ type: 9, data: hex('0102') }] });
  const seeds = [...hba.members.map((m) => m.params), cga.params];
  const addresses = [...hba.members.map((m) => m.address), cga.address];
  const t: Tally = { inputs: 0, ok: 0, failures: [] };
  for (let i = 0; i < fuzzRuns(30_000); i++) {
    const b = mutateBytes(rnd, seeds);
    run(t, 'decodeCgaParams', b, () => { assert.deepEqual(encodeCgaParams(decodeCgaParams(b)), b); });
    if (i % 3 === 0) {
      run(t, 'checkHbaSet', b, () => { checkHbaSet(addresses, b); }, false);
      run(t, 'checkCga', b, () => { checkCga(cga.address, b); }, false);
    }
  }
  ctx.diagnostic(`${t.inputs} inputs, ${t.ok} accepted`);
  assert.deepEqual(t.failures, []);
  assert.ok(t.ok > 1000, `only ${t.ok} decoded`);
});
