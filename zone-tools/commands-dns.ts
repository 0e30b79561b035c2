/**
 * The `shim6 zone` actions that talk to DNS servers or handle many hosts:
 * update, show, bulk. Same shape as commands.ts: options in, text out, exit
 * status back.
 *
 * Owns: what those commands print and how they pick defaults (the system's
 * resolver for `show`). Must not know: commander.
 */
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { EnvironmentError, UsageError } from '../shim/errors.ts';
import { encodeCapabilityRecord, formatCapabilityRecord, fromGenericRdata, parseCapabilityRecord } from '../shim/wire/capability-record.ts';
import { WireError } from '../shim/wire/errors.ts';
import { CAPABILITY_RR_TYPE } from '../shim/constants.ts';
import { buildHostRecord, checkTxtOwnerFits, RECORD_FLAGS } from './record-input.ts';
import { parseServer, type ServerAddress } from './dns-transport.ts';
import { parseTsigKeyFile } from './tsig-key.ts';
import type { TsigKey } from './tsig.ts';
import { checkOwner, inZone, sendUpdate } from './update.ts';
import { compare, fetchCapability } from './show.ts';
import { hostLocators, interfaceProblem } from './host-addresses.ts';
import { parseInventory } from './inventory.ts';
import { buildAll, bulkZoneText, failureSummary, forEachLimited, progressBar, type BulkFailure } from './bulk.ts';
import { checkZoneName, parseRrType, readInput, recordInput, writeOutput, type Out, type RecordFlags } from './commands.ts';
import { hostPort } from '../shim/log.ts';
import { parseIpv6 } from '../shim/wire/ipv6.ts';

export interface ServerFlags {
  server?: string;
  zone?: string;
  key?: string;
  keyName?: string;
  tcp?: boolean;
  timeout?: string;
}

function timeoutMs(t: string | undefined): number | undefined {
  if (t === undefined) return undefined;
  if (!/^\d+(\.\d+)?$/.test(t) || Number(t) <= 0 || Number(t) > 60) throw new UsageError('EINVALID', `--timeout: invalid value ${JSON.stringify(t)}: seconds, 0 < t ≤ 60`, 'timeout');
  return Math.round(Number(t) * 1000);
}

interface UpdateTarget { server: ServerAddress; zone: string; key: TsigKey; tcp: boolean; timeoutMs: number | undefined }

function updateTarget(f: ServerFlags): UpdateTarget {
  if (!f.server) throw new UsageError('EMISSING', '--server: required: the primary server, ADDR[:PORT]', 'server');
  if (!f.zone) throw new UsageError('EMISSING', '--zone: required: the zone to update', 'zone');
  if (!f.key) throw new UsageError('EMISSING', '--key: required: a TSIG key file (hmac-sha256)', 'key');
  const zone = f.zone.endsWith('.') ? f.zone : f.zone + '.';
  return {
    server: parseServer(f.server, '--server'), zone, key: parseTsigKeyFile(readInput(f.key, '--key', 'key'), f.key, f.keyName),
    tcp: f.tcp === true, timeoutMs: timeoutMs(f.timeout),
  };
}

export interface UpdateFlags extends RecordFlags, ServerFlags {
  fromHost?: boolean;
  interface?: string[];
  /** Apply only while the capability RRset is exactly these records (text form or `\# N hex`). */
  ifRecord?: string[];
  /** Apply only while there is no capability RRset. */
  ifNoRecord?: boolean;
}

/**
 * `--if-record` / `--if-no-record` → the prerequisite (undefined: none, as
 * nsupdate sends none unless told). A record is the text form (`v1 ulid=… loc=…`,
 * encoded canonically) or the RFC 3597 form `\# N hex` (the exact octets, as
 * `zone show --json` prints them).
 */
export function updatePrerequisite(f: Pick<UpdateFlags, 'ifRecord' | 'ifNoRecord'>): Uint8Array[] | undefined {
  const records = f.ifRecord ?? [];
  if (f.ifNoRecord && records.length > 0) throw new UsageError('EINVALID', '--if-no-record: cannot be given with --if-record', 'if-no-record');
  if (f.ifNoRecord) return [];
  if (records.length === 0) return undefined;
  return records.map((text) => {
    try {
      const t = text.trim();
      return t.startsWith('\\#') ? fromGenericRdata(t) : encodeCapabilityRecord(parseCapabilityRecord(t));
    } catch (e) {
      if (!(e instanceof WireError) && !(e instanceof UsageError)) throw e;
      throw new UsageError('EINVALID', `--if-record: invalid value ${JSON.stringify(text)}: ${e.message}`, 'if-record');
    }
  });
}

/** `zone update`: one signed RFC 2136 update for one host. */
export async function runUpdate(f: UpdateFlags, out: Out): Promise<number> {
  const flags = { ...f };
  if (!f.fromHost && f.interface !== undefined) throw new UsageError('EINVALID', '--interface goes with --from-host, which is missing (shim6 zone update --from-host --interface NAME …)', 'interface');
  if (f.fromHost) {
    for (const name of f.interface ?? []) {
      const why = interfaceProblem(name);
      if (why !== undefined) throw new UsageError('EINVALID', `--interface: invalid value ${JSON.stringify(name)}: ${why}`, 'interface');
    }
    const addrs = hostLocators(undefined, f.interface);
    if (addrs.length === 0) {
      const where = (f.interface ?? []).length > 0 ? `interface ${f.interface!.join(', ')} has` : 'this host has';
      throw new EnvironmentError('ENOLOCATOR', `--from-host: ${where} no global IPv6 address (an interface that is down has none)`);
    }
    flags.locator = [...(f.locator ?? []), ...addrs.filter((a) => !(f.locator ?? []).some((l) => l.split('/')[0] === a))];
    flags.ulid ??= addrs[0]!;
  }
  // The record's own options first: a bad value is named before any key file is read.
  const host = buildHostRecord(recordInput(flags, { ...RECORD_FLAGS, ulidElse: 'or --hba, or --from-host' }));
  checkTxtOwnerFits(host.name); // with --txt or not: the update deletes the TXT RRset at _shim6.<name>
  const prerequisite = updatePrerequisite(f);
  const target = updateTarget(f);
  const xopts = { tcp: target.tcp, ...(target.timeoutMs !== undefined ? { timeoutMs: target.timeoutMs } : {}) };
  if (inZone(host.name, target.zone)) await checkOwner(target.server, target.zone, host.name, host.rrType, target.key, xopts);
  const res = await sendUpdate(target.server, target.zone, host, target.key, { ...xopts, ...(prerequisite ? { prerequisite } : {}) });
  out.applied?.(`the update of ${host.name} in ${target.zone} was applied (${res.rcodeName}, verified)`);
  out.stdout(`updated ${host.name} in ${target.zone} at ${hostPort(target.server.host, target.server.port)}: ${res.rcodeName} (answer signed by ${target.key.name}, verified)\n`);
  out.stdout(`; ${formatCapabilityRecord(host.record)}\n`);
  return 0;
}

/**
 * The first nameserver of /etc/resolv.conf, else 127.0.0.1. Line by line: one
 * /^\s*nameserver…/m over the whole text lets \s* run across newlines from every
 * line start, quadratic in a file of blank lines.
 */
export function systemServer(resolvConf = '/etc/resolv.conf'): string {
  let text: string;
  try { text = readFileSync(resolvConf, 'utf8'); } catch { return '127.0.0.1'; } // no resolv.conf
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (m) return m[1]!.includes(':') ? `[${m[1]!.replace(/%.*$/, '')}]:53` : m[1]!;
  }
  return '127.0.0.1';
}

export interface ShowFlags {
  server?: string;
  rrType?: string;
  txt?: boolean;
  expect?: string;
  expectUlid?: string;
  expectLocator?: string[];
  json?: boolean;
  tcp?: boolean;
  timeout?: string;
}

/** `zone show NAME`: fetch, decode, print, and compare with --expect*. */
export async function runShow(name: string, f: ShowFlags, out: Out): Promise<number> {
  // Every label and the whole name, before any query: a name the encoder cannot send is the caller's (exit 2).
  checkZoneName(name, 'NAME');
  const server = parseServer(f.server ?? systemServer(), '--server');
  const rrType = parseRrType(f.rrType) ?? CAPABILITY_RR_TYPE;
  // The expectations are checked before any query: a typo is the caller's (exit 2), not a mismatch (exit 1).
  if (f.expect !== undefined) {
    try { parseCapabilityRecord(f.expect); } catch (e) {
      if (!(e instanceof WireError) && !(e instanceof UsageError)) throw e;
      throw new UsageError('EINVALID', `--expect: invalid value ${JSON.stringify(f.expect)}: ${e.message}`, 'expect');
    }
  }
  for (const [field, a] of [...(f.expectUlid !== undefined ? [['--expect-ulid', f.expectUlid] as const] : []), ...(f.expectLocator ?? []).map((l) => ['--expect-locator', l] as const)]) {
    try { parseIpv6(a); } catch { throw new UsageError('EINVALID', `${field}: invalid value ${JSON.stringify(a)}: not an IPv6 address`, field.slice(2)); }
  }
  const t = timeoutMs(f.timeout);
  const shown = await fetchCapability(server, name, rrType, f.txt !== false, { tcp: f.tcp === true, ...(t !== undefined ? { timeoutMs: t } : {}) });
  if (shown.owner !== shown.name && !f.json) out.stderr(`${shown.name} is an alias (CNAME) of ${shown.owner}: its record is read there, as a peer's stub reads it\n`);
  if (f.json) {
    out.stdout(JSON.stringify({
      name: shown.name, owner: shown.owner, aaaa: shown.aaaa,
      records: shown.records.map((r) => ({
        source: r.source, ttl: r.ttl, rdata: Buffer.from(r.rdata).toString('hex'),
        text: r.record ? formatCapabilityRecord(r.record) : null, error: r.error ?? null, ulidInAaaa: r.ulidInAaaa,
      })),
    }, null, 2) + '\n');
  } else {
    if (shown.records.length === 0) out.stdout(`${shown.owner}: no capability record\n`);
    for (const r of shown.records) {
      const owner = r.source === 'txt' ? `_shim6.${shown.owner} ${r.ttl} TXT` : `${shown.owner} ${r.ttl} TYPE${rrType}`;
      out.stdout(r.record ? `${owner} ${formatCapabilityRecord(r.record)}\n` : `${owner} unusable: ${r.error}\n`);
      if (r.record && !r.ulidInAaaa) out.stderr(`warning: ULID ${r.record.ulid} is not in the AAAA RRset of ${shown.owner} (readers ignore the record)\n`);
    }
  }
  const wants = f.expect !== undefined || f.expectUlid !== undefined || (f.expectLocator ?? []).length > 0;
  // Usable: a record readers take, so its ULID is in the AAAA RRset (else they ignore it, as the warning says).
  if (!wants) return shown.records.some((r) => r.record && r.ulidInAaaa) ? 0 : 1;
  const diffs = compare(shown, {
    ...(f.expect !== undefined ? { text: f.expect } : {}),
    ...(f.expectUlid !== undefined ? { ulid: f.expectUlid } : {}),
    ...((f.expectLocator ?? []).length > 0 ? { locators: f.expectLocator! } : {}),
  });
  for (const d of diffs) out.stderr(`mismatch: ${d}\n`);
  if (diffs.length === 0) out.stderr(`${shown.name}: matches the expectation\n`);
  return diffs.length === 0 ? 0 : 1;
}

export interface BulkFlags extends ServerFlags {
  update?: boolean;
  out?: string;
  ttl?: string;
  txt?: boolean;
  aaaa?: string;
  rrType?: string;
  progress?: boolean;
  concurrency?: string;
}

/** The flags only `zone bulk --update` takes: the BulkFlags key, the flag. */
const UPDATE_ONLY: ReadonlyArray<readonly [keyof BulkFlags, string]> = [
  ['server', '--server'], ['zone', '--zone'], ['key', '--key'], ['keyName', '--key-name'], ['tcp', '--tcp'], ['timeout', '--timeout'], ['concurrency', '--concurrency'],
];

/** `zone bulk FILE`: zone lines (or updates) for every host of the inventory. */
export async function runBulk(file: string, f: BulkFlags, out: Out, err: NodeJS.WriteStream = process.stderr): Promise<number> {
  // A flag of the other mode would be ignored: an update meant, zone lines printed and nothing published.
  const updateOnly = UPDATE_ONLY.filter(([k]) => f[k] !== undefined).map(([, flag]) => flag);
  if (f.update !== true && updateOnly.length > 0) {
    throw new UsageError('EINVALID', `zone bulk: ${updateOnly.join(', ')} ${updateOnly.length === 1 ? 'goes' : 'go'} with --update, which is missing (without it, bulk prints zone lines)`, updateOnly[0]);
  }
  if (f.update === true && f.out !== undefined) throw new UsageError('EINVALID', 'zone bulk --update: --out goes without --update only (an update writes no zone lines)', '--out');
  if (f.aaaa !== undefined && f.aaaa !== 'all' && f.aaaa !== 'ulid') {
    throw new UsageError('EINVALID', `--aaaa: invalid value ${JSON.stringify(f.aaaa)}: must be "all" or "ulid"`, 'aaaa');
  }
  const defaults = { aaaa: f.aaaa as 'all' | 'ulid' | undefined, rrType: parseRrType(f.rrType) };
  const target = f.update ? updateTarget(f) : undefined;
  const rows = parseInventory(readInput(file, 'FILE', 'inventory'), file);
  const showBar = f.progress ?? (err.isTTY === true && rows.length >= 100);
  const bar = showBar ? progressBar(err, target ? 'updating' : 'building') : undefined;
  const built = buildAll(rows, {
    ttl: f.ttl, txt: f.txt, aaaa: defaults.aaaa, rrType: defaults.rrType, baseDir: file === '-' ? process.cwd() : path.dirname(file),
  }, target ? undefined : bar?.update);
  const failures: BulkFailure[] = [...built.failures];
  if (!target) {
    const text = bulkZoneText(built.hosts);
    if (f.out) writeOutput(f.out, text, '--out'); else out.stdout(text);
  } else {
    const concurrency = f.concurrency === undefined ? 4 : Number(f.concurrency);
    if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64) throw new UsageError('EINVALID', `--concurrency: invalid value ${JSON.stringify(f.concurrency)}: 1..64`, 'concurrency');
    const whereOf = new Map(rows.map((r) => [r.name.endsWith('.') ? r.name : `${r.name}.`, r.where]));
    await forEachLimited(built.hosts, concurrency, async (h) => {
      try {
        const xopts = { tcp: target.tcp, ...(target.timeoutMs !== undefined ? { timeoutMs: target.timeoutMs } : {}) };
        checkTxtOwnerFits(h.name);
        if (inZone(h.name, target.zone)) await checkOwner(target.server, target.zone, h.name, h.rrType, target.key, xopts);
        await sendUpdate(target.server, target.zone, h, target.key, xopts);
      } catch (e) {
        failures.push({ where: whereOf.get(h.name) ?? '', name: h.name, why: (e as Error).message });
      }
    }, (n) => bar?.update(n, built.hosts.length));
  }
  bar?.finish();
  out.stderr(failureSummary(rows.length, failures) + '\n');
  return failures.length === 0 ? 0 : 1;
}
