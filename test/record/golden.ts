/** The golden capability record of the tests and docs/capability-record.md, in bytes and as an object. */
import type { CapabilityRecord } from '../../shim/wire/capability-record.ts';
import { hex } from '../helpers/octets.ts';

// Hand-assembled from the table in docs/capability-record.md "RDATA, version 1", field by field.
export const GOLDEN_HEX = [
  '01', '80', '02', '00',                                   // version 1, HBA set, 2 locators, reserved
  '20010db8000100000000000000000001',                       // ULID 2001:db8:1::1
  '00', '0a', '01', '00', '20010db8000100000000000000000001', // loc 1: flags 0, prio 10, weight 1
  '02', '14', '01', '00', '20010db8000200000000000000000001', // loc 2: TRANSIENT, prio 20, weight 1
  '0000', '0002', '0002',                                   // mandatory: [port]
  '0001', '0021', '01', '11'.repeat(32),                    // hba-digest: SHA-256, 32 × 0x11
  '0002', '0002', '159d',                                   // port 5533
  '0007', '0002', 'abcd',                                   // unknown key 7, kept
].join('');

export const GOLDEN: CapabilityRecord = {
  hbaSet: true,
  cgaUlid: false,
  ulid: '2001:db8:1::1',
  locators: [
    { address: '2001:db8:1::1', flags: 0, priority: 10, weight: 1 },
    { address: '2001:db8:2::1', flags: 2, priority: 20, weight: 1 },
  ],
  mandatory: [2],
  hbaDigest: { alg: 1, digest: new Uint8Array(32).fill(0x11) },
  port: 5533,
  unknownParams: [{ key: 7, value: hex('abcd') }],
};

