/**
 * The lab's DNS: the zone `lab.example.` (hosts a, b, ns) with B's capability
 * record, served by a real Knot (`knotd`) in the DNS namespace on both of its
 * links. Owns the zone text (checked with named-checkzone when installed), Knot's config and the Knot process it starts
 * (killed with the namespace by `labDown`).
 *
 * The capability record line is produced by `shim6 zone record --hba` (B's
 * HBA parameters file, written here as hba-b.json); if that command fails the
 * line is written here in RFC 3597 generic form from DESIGN.md §2 (version
 * 1, no flags, the ULID, the locators, no parameters).
 *
 * Knot accepts RFC 2136 updates signed with host A's TSIG key (a fresh secret
 * per lab, written in BIND format as tsig-a.key in the state directory) for
 * A's name and the names below it (`_shim6.a`), so A's daemon can publish its
 * record when its locators change (`labDnsUpdate`, config `dnsUpdate`).
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, openSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { CAPABILITY_RR_TYPE } from '../shim/constants.ts';
import { shim6NodeArgs } from '../shim/runtime-paths.ts';
import { parseIpv6 } from '../shim/wire/ipv6.ts';
import { LAB_ADDR, LabError, nsExec, type Lab } from './topology.ts';
import { writeHbaParams } from './hba.ts';

export const LAB_ZONE = 'lab.example.';
export const LAB_B_NAME = `b.${LAB_ZONE}`;
export const LAB_A_NAME = `a.${LAB_ZONE}`;

/** A locator as the capability record lists it. */
export interface RecordLocator {
  address: string;
  priority: number;
}

/** RDATA of a version-1 capability record (DESIGN.md §2), without parameters. */
export function capabilityRdata(ulid: string, locators: RecordLocator[]): Uint8Array {
  const out = new Uint8Array(20 + 20 * locators.length);
  out[0] = 1;
  out[1] = 0;
  out[2] = locators.length;
  out.set(parseIpv6(ulid), 4);
  locators.forEach((l, i) => {
    const o = 20 + 20 * i;
    out[o + 1] = l.priority;
    out.set(parseIpv6(l.address), o + 4);
  });
  return out;
}

/** The record line in RFC 3597 generic form. */
export function capabilityLine(owner: string, ttl: number, ulid: string, locators: RecordLocator[], type = CAPABILITY_RR_TYPE): string {
  const rdata = capabilityRdata(ulid, locators);
  return `${owner} ${ttl} IN TYPE${type} \\# ${rdata.length} ${Buffer.from(rdata).toString('hex')}`;
}

/**
 * B's capability record line from `shim6 zone record` (locators and
 * hba-digest from B's HBA parameters file), or undefined when the command
 * fails (then the lab writes the line itself).
 */
function zoneToolLine(hbaFile: string, ulid: string, locators: RecordLocator[]): string | undefined {
  const locs = locators.flatMap((l) => ['--locator', `${l.address}/${l.priority}`]);
  const args = [...shim6NodeArgs(), 'zone', 'record', '--name', LAB_B_NAME, '--ulid', ulid, '--hba', hbaFile, ...locs, '--aaaa', 'ulid', '--ttl', '60'];
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', timeout: 20_000 });
  const line = String(r.stdout ?? '').split('\n').find((l) => /TYPE\d+\s+\\#/.test(l));
  return r.status === 0 && line ? line.trim() : undefined;
}

export interface LabZoneOptions {
  /** Publish B's capability record (default true); false = a peer without shim6. */
  capability?: boolean;
  /** Locators in B's record (default P then Q). */
  locators?: RecordLocator[];
}

/** The zone text for the lab, and where the capability line came from. */
export function labZone(hbaFileB: string, opts: LabZoneOptions = {}): { text: string; recordSource: 'zone-tools' | 'lab' | 'none' } {
  const locators = opts.locators ?? [{ address: LAB_ADDR.bP, priority: 0 }, { address: LAB_ADDR.bQ, priority: 1 }];
  const lines = [
    `$ORIGIN ${LAB_ZONE}`,
    '$TTL 60',
    `@ IN SOA ns.${LAB_ZONE} hostmaster.${LAB_ZONE} 1 3600 600 86400 60`,
    `@ IN NS ns.${LAB_ZONE}`,
    `ns IN AAAA ${LAB_ADDR.dnsA}`,
    `a IN AAAA ${LAB_ADDR.aP}`,
    `b IN AAAA ${LAB_ADDR.bP}`,
  ];
  let recordSource: 'zone-tools' | 'lab' | 'none' = 'none';
  if (opts.capability ?? true) {
    const fromTools = zoneToolLine(hbaFileB, LAB_ADDR.bP, locators);
    lines.push(fromTools ?? capabilityLine(LAB_B_NAME, 60, LAB_ADDR.bP, locators));
    recordSource = fromTools ? 'zone-tools' : 'lab';
  }
  return { text: lines.join('\n') + '\n', recordSource };
}

/** Host A's TSIG key name in the lab. */
export const LAB_TSIG_KEY_A = 'lab-a.';

/** The TSIG key file of host A (BIND format, as `shim6 zone update --key` and `dnsUpdate.key` take). */
export function labTsigKeyFile(lab: Lab): string {
  return path.join(lab.stateDir, 'tsig-a.key');
}

/** A's `dnsUpdate` config: its name in the lab zone, at the lab's Knot, with its key; updates at most once a second. */
export function labDnsUpdate(lab: Lab, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { server: `[${LAB_ADDR.dnsA}]:53`, zone: LAB_ZONE, name: LAB_A_NAME, key: labTsigKeyFile(lab), minInterval: 1, ttl: 5, ...extra };
}

/**
 * The head of a knotd config running from `dir` (its run, pid, database and control files
 * there, logging to stderr), listening on `listen` (`address@port`), with `server` lines
 * added to its server section. The lab's server and the tests' (test/helpers/authdns.ts)
 * start with it.
 */
export function knotServerConfig(dir: string, listen: readonly string[], server: readonly string[] = []): string[] {
  return [
    'server:',
    `    rundir: "${dir}"`,
    '    user: root:root',
    `    pidfile: "${dir}/knot.pid"`,
    `    listen: [ ${listen.join(', ')} ]`,
    ...server.map((l) => `    ${l}`),
    'log:',
    '  - target: stderr',
    '    any: info',
    'database:',
    `    storage: "${dir}/db"`,
    'control:',
    `    listen: "${dir}/knot.sock"`,
  ];
}

function knotConfig(dir: string, zoneFile: string, secret: string): string {
  return [
    ...knotServerConfig(dir, [`${LAB_ADDR.dnsA}@53`, `${LAB_ADDR.dnsB}@53`]),
    'key:',
    `  - id: ${LAB_TSIG_KEY_A}`,
    '    algorithm: hmac-sha256',
    `    secret: ${secret}`,
    'acl:',
    '  - id: update_a',
    `    key: ${LAB_TSIG_KEY_A}`,
    '    action: update',
    '    update-owner: name',
    '    update-owner-match: sub-or-equal',
    `    update-owner-name: ${LAB_A_NAME}`,
    'zone:',
    `  - domain: ${LAB_ZONE}`,
    '    acl: update_a',
    `    file: "${zoneFile}"`,
    `    storage: "${dir}"`,
    '    zonefile-sync: -1',
    '    zonefile-load: whole',
    // Updates live in memory only (the lab's zone is rebuilt each time): with a journal, Knot 3.2
    // refused every update of this zone with SERVFAIL ("DDNS, processing failed (not exists)").
    '    journal-content: none',
    '    semantic-checks: on',
    '',
  ].join('\n');
}

/** Write the zone, start Knot in the DNS namespace and wait until it answers (≤ 60 s: only a hang takes that long, also on a busy machine). */
export async function startLabDns(lab: Lab, opts: LabZoneOptions = {}): Promise<{ recordSource: string }> {
  const dir = path.join(lab.stateDir, 'knot');
  mkdirSync(dir, { recursive: true });
  const zoneFile = path.join(dir, 'lab.example.zone');
  const hbaB = path.join(lab.stateDir, 'hba-b.json');
  writeHbaParams('b', hbaB);
  writeHbaParams('a', path.join(lab.stateDir, 'hba-a.json'));
  const { text, recordSource } = labZone(hbaB, opts);
  writeFileSync(zoneFile, text);
  // named-checkzone catches bad RDATA lengths; Knot also checks the zone when it loads it.
  const check = spawnSync('named-checkzone', [LAB_ZONE, zoneFile], { encoding: 'utf8' });
  if (check.status !== null && check.status !== 0) throw new LabError(`named-checkzone rejected the lab zone: ${check.stdout}${check.stderr}`);
  const secret = randomBytes(32).toString('base64');
  writeFileSync(labTsigKeyFile(lab), `key "${LAB_TSIG_KEY_A}" {\n\talgorithm hmac-sha256;\n\tsecret "${secret}";\n};\n`, { mode: 0o600 });
  writeFileSync(path.join(dir, 'knot.conf'), knotConfig(dir, zoneFile, secret));
  const log = openSync(path.join(dir, 'knot.log'), 'a');
  const child = spawn('ip', ['netns', 'exec', lab.dns, 'knotd', '-c', path.join(dir, 'knot.conf')], { stdio: ['ignore', log, log], detached: true });
  child.unref();
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const r = nsExec(lab.a, ['kdig', `@${LAB_ADDR.dnsA}`, LAB_ZONE, 'SOA', '+short', '+timeout=1', '+retry=0'], { check: false });
    if (r.status === 0 && r.stdout.trim()) return { recordSource };
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new LabError(`knotd in ${lab.dns} did not answer within 60 s (log: ${path.join(dir, 'knot.log')})`);
}
