/**
 * The lab hosts' addresses: an HBA set (RFC 5535) per host over the prefixes
 * of links P and Q, so B can prove to A that its Q address belongs with its
 * ULID (and back) — the engine uses a peer locator only after that check.
 * Sec 0 and a fixed seed per host make the sets instant and the addresses
 * the same on every run. Owns the seeds and the parameters files it writes
 * (the format of `shim6 zone hba`, shim/wire/hba-params.ts).
 */
import { writeFileSync } from 'node:fs';
import { createHash, createPublicKey } from 'node:crypto';
import { LAB_CGA_KEY_A } from './cga-key.ts';
import { generateHbaParams, type HbaParamsFile } from '../shim/wire/hba-params.ts';

export const LAB_PREFIX_P = '2001:db8:1::/64';
export const LAB_PREFIX_Q = '2001:db8:2::/64';

/** Deterministic "random" octets: SHA-256 counter mode over a seed. */
function seeded(seed: string): (n: number) => Uint8Array {
  let counter = 0;
  return (n) => {
    const out = new Uint8Array(n);
    for (let off = 0; off < n; off += 32) {
      const block = createHash('sha256').update(`${seed}/${counter++}`).digest();
      out.set(block.subarray(0, Math.min(32, n - off)), off);
    }
    return out;
  };
}

/** The third prefix of the renumbering demo: outside both hosts' HBA sets, so only a CGA signature proves it. */
export const LAB_PREFIX_R = '2001:db8:3::/64';

/**
 * A's set is HBA/CGA-compatible (RFC 5535 §3, made with its key, cga-key.ts),
 * so A can sign locators outside the set; B's is HBA-only.
 */
function labSet(host: 'a' | 'b'): HbaParamsFile {
  const publicKey = host === 'a' ? new Uint8Array(createPublicKey(LAB_CGA_KEY_A).export({ type: 'spki', format: 'der' })) : undefined;
  return generateHbaParams({ prefixes: [LAB_PREFIX_P, LAB_PREFIX_Q], sec: 0, randomBytes: seeded(`shim6-lab-host-${host}`), ...(publicKey ? { publicKey } : {}) });
}

/** Host A's and B's HBA sets: members[0] on P (the ULID), members[1] on Q. */
export const LAB_HBA: Readonly<Record<'a' | 'b', HbaParamsFile>> = { a: labSet('a'), b: labSet('b') };

/** Write host `host`'s parameters file (for its daemon and `shim6 zone record --hba`). */
export function writeHbaParams(host: 'a' | 'b', file: string): void {
  writeFileSync(file, JSON.stringify(LAB_HBA[host], null, 2) + '\n', { mode: 0o600 });
}
