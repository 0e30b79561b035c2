/**
 * The lab's DNS: the zone `lab.example.` (hosts a, b, ns) with B's capability
 * record, served by a real Knot (`knotd`) in the DNS namespace on both of its
 * links. Owns the zone text (checked with named-checkzone when installed), Knot's config and the Knot process it starts
 * (killed with the namespace by `labDown`).
 *
 * The capability record line is made by the zone tools, as `shim6 zone record
 * --hba` makes it (B's HBA parameters, also written as hba-b.json), in this
 * process: the lab does not start a program for it.
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
import { userInfo } from 'node:os';
import { LAB_ADDR, LabError, nsExec, type Lab } from './topology.ts';
import { LAB_HBA, writeHbaParams } from './hba.ts';
import { buildHostRecord } from '../zone-tools/record-input.ts';
import { hostZoneLines } from '../zone-tools/zone-lines.ts';

export const LAB_ZONE = 'lab.example.';
export const LAB_B_NAME = `b.${LAB_ZONE}`;
export const LAB_A_NAME = `a.${LAB_ZONE}`;

/** A locator as the capability record lists it. */
export interface RecordLocator {
  address: string;
  priority: number;
}

/** B's capability record line (RFC 3597 generic form), from the zone tools with B's HBA parameters. */
function capabilityLine(ulid: string, locators: RecordLocator[]): string {
  const record = buildHostRecord({ name: LAB_B_NAME, ulid, locators: locators.map((l) => `${l.address}/${l.priority}`), hba: LAB_HBA.b, aaaa: 'ulid', ttl: 60 });
  const line = hostZoneLines(record).find((l) => /TYPE\d+\s+\\#/.test(l));
  if (line === undefined) throw new LabError('the zone tools made no capability record line for B');
  return line.trim();
}

export interface LabZoneOptions {
  /** Publish B's capability record (default true); false = a peer without shim6. */
  capability?: boolean;
  /** Locators in B's record (default P then Q). */
  locators?: RecordLocator[];
}

/** The zone text for the lab, and where the capability line came from. */
export function labZone(opts: LabZoneOptions = {}): { text: string; recordSource: 'zone-tools' | 'none' } {
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
  const capability = opts.capability ?? true;
  if (capability) lines.push(capabilityLine(LAB_ADDR.bP, locators));
  return { text: lines.join('\n') + '\n', recordSource: capability ? 'zone-tools' : 'none' };
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
    // As root (the lab, CI) it stays root; a user's own test run keeps that user (Knot cannot become root then).
    `    user: ${process.getuid?.() === 0 ? 'root:root' : userInfo().username}`,
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
  const { text, recordSource } = labZone(opts);
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
