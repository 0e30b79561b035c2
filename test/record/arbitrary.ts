/**
 * fast-check generators for capability records (shared by the round-trip and
 * fuzz tests). `arbRecord` produces records a version-1 reader accepts;
 * `arbRecordWithUnknownMandatory` ones it must ignore.
 */
import fc from 'fast-check';
import { formatIpv6 } from '../../shim/wire/ipv6.ts';
import type { CapabilityRecord, HbaDigest } from '../../shim/wire/capability-record.ts';

const u8 = fc.integer({ min: 0, max: 255 });

/** Addresses biased towards structure (zero runs) so the text forms get exercised. */
export const arbAddress = fc.oneof(
  fc.uint8Array({ minLength: 16, maxLength: 16 }),
  fc.tuple(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 0xffff }), u8).map(([a, b, c]) => {
    const x = new Uint8Array(16);
    x[0] = 0x20; x[1] = 0x01; x[2] = 0x0d; x[3] = 0xb8; x[4] = a >> 8; x[5] = a & 0xff; x[12] = b >> 8; x[13] = b & 0xff; x[15] = c;
    return x;
  }),
).map((b) => formatIpv6(b));

const plain = { noNullPrototype: true } as const;
const arbLocator = fc.record({ address: arbAddress, flags: u8, priority: u8, weight: u8 }, plain);

const arbDigest: fc.Arbitrary<HbaDigest> = fc.oneof(
  fc.uint8Array({ minLength: 32, maxLength: 32 }).map((digest) => ({ alg: 1, digest })),
  fc.tuple(fc.integer({ min: 2, max: 255 }), fc.uint8Array({ minLength: 1, maxLength: 48 })).map(([alg, digest]) => ({ alg, digest })),
);

const arbUnknown = fc.uniqueArray(
  fc.record({ key: fc.integer({ min: 3, max: 0xffff }), value: fc.uint8Array({ maxLength: 24 }) }, plain),
  { maxLength: 4, selector: (p) => p.key },
).map((ps) => ps.sort((a, b) => a.key - b.key));

function build(
  base: { hbaSet: boolean; cgaUlid: boolean; ulid: string; locators: CapabilityRecord['locators'] },
  digest: HbaDigest | null, port: number | null, unknownParams: CapabilityRecord['unknownParams'], mandatoryPick: boolean[],
  allowUnknownMandatory: boolean,
): CapabilityRecord {
  const r: CapabilityRecord = { ...base, mandatory: [], unknownParams };
  if (digest !== null) r.hbaDigest = digest;
  if (port !== null) r.port = port;
  const candidates = [...(digest !== null ? [1] : []), ...(port !== null ? [2] : []), ...(allowUnknownMandatory ? unknownParams.map((p) => p.key) : [])];
  const picked = new Set(candidates.filter((_, i) => mandatoryPick[i % mandatoryPick.length] === true));
  if (allowUnknownMandatory && unknownParams[0] !== undefined) picked.add(unknownParams[0].key);
  r.mandatory = [...picked].sort((x, y) => x - y);
  return r;
}

const parts = fc.tuple(
  fc.record({
    hbaSet: fc.boolean(), cgaUlid: fc.boolean(), ulid: arbAddress,
    locators: fc.uniqueArray(arbLocator, { minLength: 1, maxLength: 32, selector: (l) => l.address }),
  }, plain),
  fc.option(arbDigest), fc.option(fc.integer({ min: 1, max: 0xffff })), arbUnknown, fc.array(fc.boolean(), { minLength: 1, maxLength: 6 }),
);

/** Records a version-1 reader accepts (mandatory lists only known keys). */
export const arbRecord: fc.Arbitrary<CapabilityRecord> = parts.map(([b, d, p, u, m]) => build(b, d, p, u, m, false));

/** Records whose mandatory list names at least one unknown key (readers must ignore them). */
export const arbRecordWithUnknownMandatory: fc.Arbitrary<CapabilityRecord> = parts
  .filter(([, , , u]) => u.length > 0)
  .map(([b, d, p, u, m]) => build(b, d, p, u, m, true));
